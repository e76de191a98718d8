"""The record step of the pipeline (see :mod:`.pipeline`): a batch's Message rows, the
envelope recipients merged into messages archived before, and the placements (which
folder of which mailbox holds each message).

The new rows are inserted many at a time (``archive.bulk.insert_rows``) and their values
kept as tuples in MESSAGE_FIELDS order (``BatchItem.row``): index documents and results
are built from those, without reading the rows back or making model instances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from mailvault.archive.bulk import insert_rows
from mailvault.archive.models import Folder, Mailbox, MailboxAddress, Message, Placement
from mailvault.archive.services import folder_for_path
from mailvault.archive.store import PreparedBlob
from mailvault.ingestion import steps
from mailvault.ingestion.background import StoreWrite
from mailvault.ingestion.parse import ParsedMessage
from mailvault.ingestion.types import IngestRequest
from mailvault.search import IndexDocument


@dataclass
class BatchItem:
    """A message of the batch going through the steps, and what they found out."""

    request: IngestRequest
    sha256: str
    parsed: ParsedMessage
    prepared: PreparedBlob | None = None
    message: Message | None = None  # the recorded message, when it was read (or found)
    pk: int | None = None  # its id, once known
    row: tuple[object, ...] | None = None  # the values it was just recorded with
    stored: bool = False
    placements_added: int = 0
    envelope_grew: bool = False


class Recorder:
    """The record step for the batches of one ingestion: it keeps the folders it filed
    into (by mailbox and path) and, in ``filed``, where the messages the current batch
    created were filed (all their placements, so their index documents need no query)."""

    def __init__(self) -> None:
        self._folder_cache: dict[tuple[int, str], Folder] = {}
        self.filed: dict[int, steps.Placed] = {}

    def record(
        self, items: list[BatchItem], storing: StoreWrite | None, *, savepoint: bool
    ) -> None:
        """Insert the new messages' rows, merge envelopes into known ones and file them
        all, in one transaction (``savepoint``: of its own within an outer one); the
        store's write of the same batch (``storing``) is waited for before it ends."""
        now = timezone.now()
        # In a grouped transaction, without a savepoint of its own (savepoint=False; see
        # ingestion.grouped_transaction): a failure here rolls the whole group back.
        with transaction.atomic(savepoint=savepoint):
            first_of: dict[str, BatchItem] = {}
            for item in items:
                if item.message is None:
                    first_of.setdefault(item.sha256, item)
            created: set[int] = set()
            if first_of:
                rows = {sha: message_row(item, now) for sha, item in first_of.items()}
                inserted = dict(
                    insert_rows(
                        Message,
                        MESSAGE_FIELDS,
                        list(rows.values()),
                        ignore_conflicts=True,  # a concurrent ingest may have stored it first
                        returning=("sha256", "id"),
                    )
                )
                created = set(inserted.values())
                others = [sha for sha in first_of if sha not in inserted]
                found = {}
                if others:  # a concurrent ingest recorded them first: read them
                    found = {m.sha256: m for m in Message.objects.filter(sha256__in=others)}
                for item in items:
                    if item.message is None:
                        pk = inserted.get(item.sha256)
                        if pk is None:
                            item.message = found[item.sha256]
                            item.pk = item.message.pk
                        else:  # no model instance: the values are at hand (6 % of an import)
                            item.pk, item.row = pk, rows[item.sha256]
            self._merge_envelopes(items, created)
            self._place(items, now, created)
            if storing is not None:
                # The bytes are durable before the rows are committed: now, or (grouped)
                # by the store's sync before the group commits.
                storing.wait()

    def _merge_envelopes(self, items: list[BatchItem], created: set[int]) -> None:
        """A message archived before (from a mailbox, say) and now journaled: the new
        envelope's recipients (Bcc included) are added to the recorded ones, so that a
        Compliance search finds it by who really got it, whichever copy came first. The
        rows are re-read locked, so two ingests merging at once lose nothing."""
        wanted = [
            item for item in items if item.pk not in created and item.request.envelope_recipients
        ]
        if not wanted:
            return
        ids = {item.message.pk for item in wanted if item.message is not None}
        rows = {
            m.pk: m
            for m in Message.objects.select_for_update()
            .filter(pk__in=ids)
            .only("pk", "envelope_from", "envelope_recipients")
        }
        changed: set[int] = set()
        for item in wanted:
            assert item.message is not None
            row = rows[item.message.pk]
            recipients = list(row.envelope_recipients)
            for recipient in item.request.envelope_recipients:
                if recipient.casefold() not in recipients:
                    recipients.append(recipient.casefold())
            sender = row.envelope_from or item.request.envelope_from[:254]
            if recipients != row.envelope_recipients or sender != row.envelope_from:
                row.envelope_recipients, row.envelope_from = recipients, sender
                changed.add(row.pk)
                item.envelope_grew = True
            item.message.envelope_recipients = row.envelope_recipients
            item.message.envelope_from = row.envelope_from
        for pk in changed:
            Message.objects.filter(pk=pk).update(
                envelope_recipients=rows[pk].envelope_recipients,
                envelope_from=rows[pk].envelope_from,
            )

    def _place(self, items: list[BatchItem], now: datetime, created: set[int]) -> None:
        """File the messages. ``created``: messages this batch recorded (they have no
        placements yet, so there is nothing to look up for them)."""
        addresses = {a.casefold() for item in items for a in item.request.file_by_addresses}
        by_address: dict[str, int] = {}
        mailboxes: dict[int, Mailbox] = {}
        if addresses:
            by_address = dict(
                MailboxAddress.objects.filter(address__in=addresses).values_list(
                    "address", "mailbox_id"
                )
            )
            mailboxes = {m.pk: m for m in Mailbox.objects.filter(pk__in=set(by_address.values()))}
        wanted: dict[tuple[int, int], tuple[BatchItem, Folder, str]] = {}
        for item in items:
            assert item.pk is not None
            targets = [(t.mailbox, t.folder_path) for t in item.request.targets]
            for address in item.request.file_by_addresses:
                mailbox_id = by_address.get(address.casefold())
                if mailbox_id is not None:
                    targets.append((mailboxes[mailbox_id], ""))
            for mailbox, path in targets:
                folder = self._folder(mailbox, path)
                wanted.setdefault((folder.pk, item.pk), (item, folder, item.request.source_ref))
        if not wanted:
            return
        known = [message_id for _, message_id in wanted if message_id not in created]
        present: set[tuple[int, int]] = set()
        if known:
            present = set(
                Placement.objects.filter(message_id__in=set(known)).values_list(
                    "folder_id", "message_id"
                )
            )
        new_rows = []
        for key, (item, folder, source_ref) in wanted.items():
            if key in present:
                continue
            new_rows.append((key[1], folder.mailbox_id, folder.pk, source_ref[:512], now))
            item.placements_added += 1
            if key[1] in created:
                self.filed.setdefault(key[1], []).append((folder.mailbox_id, folder.path))
        insert_rows(
            Placement,
            ["message", "mailbox", "folder", "source_ref", "added_at"],
            new_rows,
            ignore_conflicts=True,
        )

    def _folder(self, mailbox: Mailbox, path: str) -> Folder:
        key = (mailbox.pk, path.strip("/"))
        folder = self._folder_cache.get(key)
        if folder is None:
            folder = folder_for_path(mailbox, key[1])
            self._folder_cache[key] = folder
        return folder


MESSAGE_FIELDS = [
    "sha256",
    "size",
    "message_id",
    "date",
    "from_address",
    "from_name",
    "to",
    "cc",
    "bcc",
    "envelope_from",
    "envelope_recipients",
    "subject",
    "attachment_names",
    "has_attachments",
    "archived_at",
    "source",
    "unparseable",
    "parse_problem",
    "indexed",
]


def message_row(item: BatchItem, now: datetime) -> tuple[object, ...]:
    """The values of a new Message row, in MESSAGE_FIELDS order."""
    parsed = item.parsed
    request = item.request
    return (
        item.sha256,
        len(request.raw),
        parsed.message_id,
        parsed.date,
        parsed.from_address[:254],
        parsed.from_name[:200],
        parsed.to,
        parsed.cc,
        parsed.bcc,
        request.envelope_from[:254],
        [r.casefold() for r in request.envelope_recipients],
        parsed.subject,
        parsed.attachment_names,
        parsed.has_attachments,
        now,
        request.source,
        parsed.unparseable,
        "; ".join(parsed.problems)[:2000],
        False,
    )


_MESSAGE_ATTNAMES: list[str] = []


# The values of a recorded row (MESSAGE_FIELDS order) that its index document takes.
_DOCUMENT_FIELDS = (
    "size date from_address from_name to cc bcc envelope_recipients subject "
    "attachment_names has_attachments archived_at"
)
_DOCUMENT_VALUES = itemgetter(*(MESSAGE_FIELDS.index(n) for n in _DOCUMENT_FIELDS.split()))


def row_document(
    pk: int, row: tuple[Any, ...], body: str, attachment_text: str, placed: steps.Placed
) -> IndexDocument:
    """The index document of the message just recorded as ``row`` (MESSAGE_FIELDS
    order): the same values :func:`steps.index_document` reads from a model instance."""
    (
        size,
        date,
        from_address,
        from_name,
        to,
        cc,
        bcc,
        envelope_recipients,
        subject,
        attachment_names,
        has_attachments,
        archived_at,
    ) = _DOCUMENT_VALUES(row)
    return steps.document(
        pk,
        date=date or archived_at,
        archived_at=archived_at,
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        to=to,
        cc=cc,
        bcc=bcc,
        envelope_recipients=envelope_recipients,
        body=body,
        attachment_names=attachment_names,
        attachment_text=attachment_text,
        size=size,
        has_attachments=has_attachments,
        placed=placed,
    )


def result_message(item: BatchItem, tenant_id: int) -> Message | Callable[[], Message]:
    """The message of a result, or how to make it when asked (see IngestResult)."""
    if item.message is not None:
        return item.message
    assert item.pk is not None and item.row is not None
    return partial(_message, item.pk, item.row, tenant_id)


def _message(pk: int, row: tuple[object, ...], tenant_id: int) -> Message:
    """The Message just inserted as ``row`` (MESSAGE_FIELDS order), without reading it
    back: the values are the ones the database was given."""
    if not _MESSAGE_ATTNAMES:
        _MESSAGE_ATTNAMES.extend(f.attname for f in Message._meta.concrete_fields)
    values = dict(zip(MESSAGE_FIELDS, row, strict=True))
    values["id"] = pk
    values["tenant_id"] = tenant_id
    return Message.from_db(
        connection.alias, _MESSAGE_ATTNAMES, [values[n] for n in _MESSAGE_ATTNAMES]
    )
