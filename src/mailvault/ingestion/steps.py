"""The steps of the pipeline that talk to other areas: parse (with attachment text),
store (the blob store) and index (the search index). Kept apart from the batching logic
in :mod:`.pipeline` so each can be tested and replaced on its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailvault.archive.models import Message, Placement
from mailvault.archive.store import BlobStore, PreparedBlob
from mailvault.ingestion.extract import Extractor
from mailvault.ingestion.parse import ParsedMessage, parse_message
from mailvault.search import Address, IndexDocument, TenantIndex

# Index text kept per message from all its attachments together.
MAX_ATTACHMENT_TEXT = 1 << 20


def parse(raw: bytes) -> ParsedMessage:
    return parse_message(raw)


def attachment_texts(extractor: Extractor, parsed: Sequence[ParsedMessage]) -> list[str]:
    """The attachments' text per message, extracted with the limits of ``extractor``."""
    items = [(i, a) for i, p in enumerate(parsed) for a in p.attachments]
    if not items:
        return ["" for _ in parsed]
    results = extractor.extract_many([a for _, a in items])
    texts: dict[int, list[str]] = defaultdict(list)
    for (i, _), result in zip(items, results, strict=True):
        if result.text:
            texts[i].append(result.text)
        # An image or another format without text is no problem worth recording.
        if result.problem and result.kind:
            parsed[i].problems.append(f"attachment text: {result.problem}")
    return ["\n".join(texts[i])[:MAX_ATTACHMENT_TEXT] for i in range(len(parsed))]


def store_blobs(store: BlobStore, blobs: Iterable[bytes | PreparedBlob]) -> None:
    """Store the originals (raw, or already prepared by a worker), durable (one fsync for
    the batch) before returning."""
    with store.batch():
        for blob in blobs:
            if isinstance(blob, PreparedBlob):
                store.put_prepared(blob, durable=False)
            else:
                store.put(blob, durable=False)


@dataclass
class Indexable:
    message: Message
    parsed: ParsedMessage
    attachment_text: str = ""


def _addresses(values: list[str]) -> list[Address]:
    return [Address(v) for v in values if v]


def index_documents(items: Sequence[Indexable]) -> list[IndexDocument]:
    """Index documents for messages, with every mailbox and folder they are filed in."""
    ids = [item.message.pk for item in items]
    where: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for message_id, mailbox_id, path in Placement.objects.filter(message_id__in=ids).values_list(
        "message_id", "mailbox_id", "folder__path"
    ):
        where[message_id].append((mailbox_id, path))
    documents = []
    for item in items:
        message, parsed = item.message, item.parsed
        placed = where.get(message.pk, [])
        documents.append(
            IndexDocument(
                message_id=message.pk,
                mailbox_ids=sorted({m for m, _ in placed}),
                folder_paths=sorted({p for _, p in placed if p}),
                date=message.date or message.archived_at,
                archived_at=message.archived_at,
                subject=message.subject,
                sender=Address(message.from_address, message.from_name)
                if message.from_address or message.from_name
                else None,
                to=_addresses(message.to),
                cc=_addresses(message.cc),
                bcc=_addresses(message.bcc),
                envelope_recipients=list(message.envelope_recipients),
                body=parsed.body_text,
                attachment_names=list(message.attachment_names),
                attachment_text=item.attachment_text,
                size=message.size,
                has_attachment=message.has_attachments,
            )
        )
    return documents


def index_messages(index: TenantIndex, items: Sequence[Indexable]) -> None:
    """Add (or replace) the messages in the index and mark them indexed."""
    if not items:
        return
    index.add(index_documents(items))
    Message.objects.filter(pk__in=[item.message.pk for item in items]).update(indexed=True)
