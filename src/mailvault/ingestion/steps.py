"""The steps of the pipeline that talk to other areas: parse (with attachment text),
store (the blob store) and index (the search index). Kept apart from the batching logic
in :mod:`.pipeline` so each can be tested and replaced on its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db.models import Count, Q

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
        prepared: list[PreparedBlob] = []
        for blob in blobs:
            if isinstance(blob, PreparedBlob):
                prepared.append(blob)
            else:
                store.put(blob, durable=False)
        store.put_prepared_many(prepared)


@dataclass
class Indexable:
    message: Message
    parsed: ParsedMessage
    attachment_text: str = ""


def _addresses(values: list[str]) -> list[Address]:
    return [_address(v) for v in values if v]


@lru_cache(maxsize=4096)
def _address(value: str) -> Address:
    """One (immutable) Address per recurring value: a list's own address is in nearly
    every message of an import, and making a frozen dataclass costs more than the lookup."""
    return Address(value)


Placed = list[tuple[int, str]]  # (mailbox id, folder path) per placement of a message

# Ids per query when asking about many messages at once.
_ID_CHUNK = 5000


def _id_filters(ids: Sequence[int], field: str) -> Iterable[Q]:
    """Filters that together select exactly ``ids`` (on ``field``): runs of consecutive
    ids (the messages of one batch mostly are) as ranges, the rest in chunks."""
    ordered = sorted(set(ids))
    singles: list[int] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            if i - start >= 8:
                yield Q(**{f"{field}__gte": ordered[start], f"{field}__lte": ordered[i - 1]})
            else:
                singles.extend(ordered[start:i])
            start = i
    for first in range(0, len(singles), _ID_CHUNK):
        yield Q(**{f"{field}__in": singles[first : first + _ID_CHUNK]})


def placements(message_ids: Sequence[int]) -> dict[int, Placed]:
    """Where each message is filed: one (mailbox id, folder path) per placement."""
    where: dict[int, Placed] = defaultdict(list)
    for ids in _id_filters(message_ids, "message_id"):
        rows = Placement.objects.filter(ids).values_list("message_id", "mailbox_id", "folder__path")
        for message_id, mailbox_id, path in rows:
            where[message_id].append((mailbox_id, path))
    return where


def placement_counts(message_ids: Sequence[int]) -> dict[int, int]:
    """How many placements each message has (absent: none)."""
    counts: dict[int, int] = {}
    for ids in _id_filters(message_ids, "message_id"):
        rows = (
            Placement.objects.filter(ids)
            .values_list("message_id")
            .annotate(n=Count("id"))
            .values_list("message_id", "n")
        )
        counts.update(rows)
    return counts


def mark_indexed(message_ids: Sequence[int]) -> None:
    for ids in _id_filters(message_ids, "pk"):
        Message.objects.filter(ids).update(indexed=True)


def place_document(document: IndexDocument, placed: Placed) -> None:
    """Set the mailboxes and folders of ``document`` to ``placed``."""
    document.mailbox_ids = sorted({m for m, _ in placed})
    document.folder_paths = sorted({p for _, p in placed if p})


def index_document(
    message: Message, parsed: ParsedMessage, attachment_text: str, placed: Placed
) -> IndexDocument:
    """The index document of a message filed at ``placed``."""
    return document(
        message.pk,
        date=message.date or message.archived_at,
        archived_at=message.archived_at,
        subject=message.subject,
        from_address=message.from_address,
        from_name=message.from_name,
        to=message.to,
        cc=message.cc,
        bcc=message.bcc,
        envelope_recipients=message.envelope_recipients,
        body=parsed.body_text,
        attachment_names=message.attachment_names,
        attachment_text=attachment_text,
        size=message.size,
        has_attachments=message.has_attachments,
        placed=placed,
    )


def document(
    message_id: int,
    *,
    date: datetime,
    archived_at: datetime,
    subject: str,
    from_address: str,
    from_name: str,
    to: list[str],
    cc: list[str],
    bcc: list[str],
    envelope_recipients: list[str],
    body: str,
    attachment_names: list[str],
    attachment_text: str,
    size: int,
    has_attachments: bool,
    placed: Placed,
) -> IndexDocument:
    """The index document of a message with these recorded values, filed at ``placed``."""
    result = IndexDocument(
        message_id=message_id,
        mailbox_ids=[],
        date=date,
        archived_at=archived_at,
        subject=subject,
        sender=Address(from_address, from_name) if from_address or from_name else None,
        to=_addresses(to),
        cc=_addresses(cc),
        bcc=_addresses(bcc),
        envelope_recipients=list(envelope_recipients),
        body=body,
        attachment_names=list(attachment_names),
        attachment_text=attachment_text,
        size=size,
        has_attachment=has_attachments,
    )
    place_document(result, placed)
    return result


def index_documents(items: Sequence[Indexable]) -> list[IndexDocument]:
    """Index documents for messages, with every mailbox and folder they are filed in."""
    where = placements([item.message.pk for item in items])
    return [
        index_document(
            item.message, item.parsed, item.attachment_text, where.get(item.message.pk, [])
        )
        for item in items
    ]


def index_messages(index: TenantIndex, items: Sequence[Indexable]) -> None:
    """Add (or replace) the messages in the index and mark them indexed."""
    if not items:
        return
    index.add(index_documents(items))
    mark_indexed([item.message.pk for item in items])
