"""The single entry point every message goes through, as ordered small steps:

    parse → deduplicate → store → record → index

``ingest()`` takes one message; ``Ingestor`` takes many and runs the same steps a batch
at a time (one fsync of the store, one database transaction and one index commit per
batch), which is what makes bulk imports fast. Both need the tenant to be active
(``tenant_context``).

Failure model: the store is written (and made durable) before the database records the
message, and the database before the index. A crash between the steps leaves bytes the
store will deduplicate on the next attempt, or messages with ``indexed=False`` that
:func:`mailvault.ingestion.reconcile.reconcile_index` picks up. Nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from mailvault.archive.bulk import insert_rows
from mailvault.archive.models import Folder, Mailbox, MailboxAddress, Message, Placement
from mailvault.archive.services import folder_for_path
from mailvault.archive.store import BlobStore, PreparedBlob, store_for
from mailvault.ingestion import steps
from mailvault.ingestion.extract import Extractor
from mailvault.ingestion.parallel import PreparePool, prepare_in_process
from mailvault.ingestion.parse import ParsedMessage
from mailvault.ingestion.types import IngestRequest, IngestResult
from mailvault.search import TenantIndex
from mailvault.tenancy.context import current_tenant

log = logging.getLogger("mailvault.ingestion")


@dataclass
class _Item:
    request: IngestRequest
    sha256: str
    parsed: ParsedMessage
    prepared: PreparedBlob | None = None
    message: Message | None = None
    stored: bool = False
    folders: list[Folder] = field(default_factory=list)
    placements_added: int = 0


class Ingestor:
    """Batching front of the pipeline for the active tenant. Use as a context manager,
    ``add()`` requests, read results from ``flush()`` (called for you every
    ``batch_size`` requests and at exit)."""

    def __init__(
        self,
        *,
        batch_size: int = 500,
        max_batch_bytes: int = 64 << 20,
        index: bool = True,
        index_every: int = 1,
        index_interval_s: float = 2.0,
        workers: int = 0,
        keep_results: bool = True,
    ) -> None:
        """``index_every``/``index_interval_s``: commit the search index once this many
        messages wait or this much time has passed (bulk imports commit rarely; a single
        message is searchable at once). ``workers``: processes that parse and prepare
        the stored form in parallel (bulk imports; 0 = all in this process).
        ``keep_results=False``: ``results`` stays empty (a bulk import reads each batch's
        results from ``flush()``; keeping them all would grow with the import)."""
        self.tenant = current_tenant()
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self._pending_bytes = 0
        self.index = index
        self._pending: list[IngestRequest] = []
        self._folder_cache: dict[tuple[int, str], Folder] = {}
        self.results: list[IngestResult] = []
        self.keep_results = keep_results
        self._blob_store: BlobStore | None = None
        self._extractor: Extractor | None = None
        self.index_every = index_every
        self.index_interval_s = index_interval_s
        self._to_index: dict[int, steps.Indexable] = {}
        self.workers = workers
        self._pool: PreparePool | None = None
        self._last_index = time.monotonic()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
                self.commit_index()
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._blob_store is not None:
            self._blob_store.close()
            self._blob_store = None
        if self._extractor is not None:
            self._extractor.close()
            self._extractor = None

    @property
    def store(self) -> BlobStore:
        if self._blob_store is None:
            self._blob_store = store_for(self.tenant)
        return self._blob_store

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            self._extractor = Extractor()
        return self._extractor

    def add(self, request: IngestRequest) -> None:
        self._pending.append(request)
        self._pending_bytes += len(request.raw)
        if len(self._pending) >= self.batch_size or self._pending_bytes >= self.max_batch_bytes:
            self.flush()

    def flush(self) -> list[IngestResult]:
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        self._pending_bytes = 0
        results = self._run(batch)
        if self.keep_results:
            self.results.extend(results)
        return results

    # --- the steps, a batch at a time ------------------------------------------------

    def _run(self, batch: list[IngestRequest]) -> list[IngestResult]:
        items = self._parse(batch)
        self._deduplicate(items)
        self._store(items)
        self._record(items)
        if self.index:
            self._index(items)
        return [
            IngestResult(
                message=item.message,
                stored=item.stored,
                placements_added=item.placements_added,
                problems=list(item.parsed.problems),
            )
            for item in items
            if item.message is not None
        ]

    def _parse(self, batch: list[IngestRequest]) -> list[_Item]:
        raws = [request.raw for request in batch]
        if self.workers and len(batch) > 1:
            if self._pool is None:
                self._pool = PreparePool(self.store, self.workers)
            results = self._pool.map(raws)
        else:
            results = prepare_in_process(raws)
        return [
            _Item(request=request, sha256=sha, parsed=parsed, prepared=prepared)
            for request, (sha, parsed, prepared) in zip(batch, results, strict=True)
        ]

    def _deduplicate(self, items: list[_Item]) -> None:
        shas = {item.sha256 for item in items}
        existing = {m.sha256: m for m in Message.objects.filter(sha256__in=shas)}
        for item in items:
            item.message = existing.get(item.sha256)

    def _store(self, items: list[_Item]) -> None:
        new: dict[str, _Item] = {}
        for item in items:
            if item.message is None and item.sha256 not in new:
                new[item.sha256] = item
                item.stored = True
        if new:
            steps.store_blobs(
                self.store, [item.prepared or item.request.raw for item in new.values()]
            )

    def _record(self, items: list[_Item]) -> None:
        now = timezone.now()
        with transaction.atomic():
            first_of: dict[str, _Item] = {}
            for item in items:
                if item.message is None:
                    first_of.setdefault(item.sha256, item)
            if first_of:
                insert_rows(
                    Message,
                    MESSAGE_FIELDS,
                    [_message_row(item, now) for item in first_of.values()],
                    ignore_conflicts=True,  # a concurrent ingest may have stored it first
                )
                recorded = {m.sha256: m for m in Message.objects.filter(sha256__in=list(first_of))}
                for item in items:
                    if item.message is None:
                        item.message = recorded[item.sha256]
            self._place(items, now)

    def _place(self, items: list[_Item], now: datetime) -> None:
        addresses = {a.casefold() for item in items for a in item.request.file_by_addresses}
        by_address: dict[str, int] = dict(
            MailboxAddress.objects.filter(address__in=addresses).values_list(
                "address", "mailbox_id"
            )
        )
        mailboxes = {m.pk: m for m in Mailbox.objects.filter(pk__in=set(by_address.values()))}
        wanted: dict[tuple[int, int], tuple[_Item, Folder, str]] = {}
        for item in items:
            assert item.message is not None
            targets = [(t.mailbox, t.folder_path) for t in item.request.targets]
            for address in item.request.file_by_addresses:
                mailbox_id = by_address.get(address.casefold())
                if mailbox_id is not None:
                    targets.append((mailboxes[mailbox_id], ""))
            for mailbox, path in targets:
                folder = self._folder(mailbox, path)
                wanted.setdefault(
                    (folder.pk, item.message.pk), (item, folder, item.request.source_ref)
                )
        if not wanted:
            return
        message_ids = {message_id for _, message_id in wanted}
        present = set(
            Placement.objects.filter(message_id__in=message_ids).values_list(
                "folder_id", "message_id"
            )
        )
        new_rows = []
        for key, (item, folder, source_ref) in wanted.items():
            if key in present:
                continue
            new_rows.append((key[1], folder.mailbox_id, folder.pk, source_ref[:512], now))
            item.placements_added += 1
        insert_rows(
            Placement,
            ["message", "mailbox", "folder", "source_ref", "added_at"],
            new_rows,
            ignore_conflicts=True,
        )

    def _index(self, items: list[_Item]) -> None:
        """Queue new messages, and known ones that were filed somewhere new (their
        mailbox list in the index changes), for the next index commit."""
        todo: dict[int, _Item] = {}
        for item in items:
            if item.message is not None and (item.stored or item.placements_added):
                todo.setdefault(item.message.pk, item)
        chosen = list(todo.values())
        texts = steps.attachment_texts(self.extractor, [item.parsed for item in chosen])
        for item, text in zip(chosen, texts, strict=True):
            item.parsed.attachments = []  # their text is extracted; the index waits
            if item.message is not None:
                self._to_index[item.message.pk] = steps.Indexable(item.message, item.parsed, text)
        waited = time.monotonic() - self._last_index
        if len(self._to_index) >= self.index_every or waited >= self.index_interval_s:
            self.commit_index()

    def commit_index(self) -> None:
        """Make everything ingested so far searchable (and mark it indexed)."""
        if self._to_index:
            steps.index_messages(TenantIndex.open(self.tenant.pk), list(self._to_index.values()))
            self._to_index.clear()
        self._last_index = time.monotonic()

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


def _message_row(item: _Item, now: datetime) -> tuple[object, ...]:
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


def ingest(request: IngestRequest) -> IngestResult:
    """Archive one message for the active tenant."""
    with Ingestor(batch_size=1) as ingestor:
        ingestor.add(request)
    return ingestor.results[0]


def ingest_all(requests: Iterable[IngestRequest], *, batch_size: int = 500) -> list[IngestResult]:
    with Ingestor(batch_size=batch_size) as ingestor:
        for request in requests:
            ingestor.add(request)
    return ingestor.results
