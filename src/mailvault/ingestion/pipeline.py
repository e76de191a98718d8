"""The single entry point every message goes through, as ordered small steps:

    parse → deduplicate → store → record → index

``ingest()`` takes one message; ``Ingestor`` takes many and runs the same steps a batch
at a time (one fsync of the store, one database transaction and one index commit per
batch), which is what makes bulk imports fast. Both need the tenant to be active
(``tenant_context``). The record step is :mod:`.recording`; parsing and preparing the
stored form run in worker processes for bulk imports (:mod:`.parallel`).

Failure model: the store is written (and made durable) before the database commits the
message (a bulk import inserts the rows while the store writes, in a transaction that
commits once the store is durable), and the database before the index. A crash between
the steps leaves bytes the store will deduplicate on the next attempt, or messages with
``indexed=False`` that :func:`mailvault.ingestion.reconcile.reconcile_index` picks up.
Nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailvault.archive.bulk import refresh_planner_statistics
from mailvault.archive.models import Message
from mailvault.archive.store import BlobStore, store_for
from mailvault.ingestion import steps
from mailvault.ingestion.background import IndexCommit, StoreWrite, StoreWriter
from mailvault.ingestion.bulk_database import BulkDatabase
from mailvault.ingestion.extract import Extractor
from mailvault.ingestion.grouped_transaction import GroupedTransaction
from mailvault.ingestion.parallel import (
    PendingBatch,
    Prepared,
    PreparePool,
    prepare_in_process,
    prepare_one,
)
from mailvault.ingestion.recording import BatchItem, Recorder, result_message, row_document
from mailvault.ingestion.types import IngestRequest, IngestResult
from mailvault.search import IndexDocument, TenantIndex
from mailvault.tenancy.context import current_tenant

log = logging.getLogger("mailvault.ingestion")


# The index is committed before the text waiting for it exceeds this (characters of body
# and attachment text), so the import's memory stays bounded whatever the message sizes.
MAX_PENDING_INDEX_CHARS = 16 << 20
# Messages bigger than this are not handed to the prepare workers (see Ingestor._start).
WORKER_MAX_BYTES = 4 << 20
# SQLite's planner statistics are refreshed after this many messages went through (see
# archive.bulk.refresh_planner_statistics; it re-analyzes only tables that grew a lot).
PLANNER_STATS_EVERY = 5_000


@dataclass
class _Queued:
    """A document waiting for the next index commit, and how many placements it was
    built from (a different count at commit means someone filed the message meanwhile)."""

    document: IndexDocument
    placements: int


class Ingestor:
    """Batching front of the pipeline for the active tenant. Use as a context manager,
    ``add()`` requests, read results from ``flush()`` (called for you every
    ``batch_size`` requests and at exit).

    Bulk imports with ``workers`` call ``submit()`` instead of ``flush()``: it hands the
    pending batch to the workers and records the batch handed over before, so parsing
    and recording overlap; ``flush()`` finishes both."""

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
        index_in_background: bool = False,
        store_in_background: bool = False,
        transaction_seconds: float = 0.0,
    ) -> None:
        """``index_every``/``index_interval_s``: commit the search index once this many
        messages wait or this much time has passed (bulk imports commit rarely; a single
        message is searchable at once). ``workers``: processes that parse and prepare
        the stored form in parallel (bulk imports; 0 = all in this process).
        ``keep_results=False``: ``results`` stays empty (a bulk import reads each batch's
        results from ``flush()``/``submit()``; keeping them all would grow with the
        import).
        ``index_in_background``: ``commit_index()`` returns while tantivy commits (one
        commit at a time); the last one is waited for at exit (bulk imports).
        ``store_in_background``: a batch is written to the store while it is recorded,
        the database committing once the store has (bulk imports).
        ``transaction_seconds``: ``submit()`` keeps one database transaction over the
        batches of this long (see :mod:`.grouped_transaction`; bulk imports); ``flush()``
        commits it, and the batches' index documents wait for that commit."""
        self.tenant = current_tenant()
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self._pending_bytes = 0
        self.index = index
        self._pending: list[IngestRequest] = []
        self._inflight: tuple[list[IngestRequest], PendingBatch | None] | None = None
        self.results: list[IngestResult] = []
        self.keep_results = keep_results
        # Results of batches add() ran on its own (past batch_size or max_batch_bytes),
        # for the next flush() or submit() to return when they are not kept in results.
        self._ran_in_add: list[IngestResult] = []
        self._blob_store: BlobStore | None = None
        self._extractor: Extractor | None = None
        self.index_every = index_every
        self.index_interval_s = index_interval_s
        self._to_index: dict[int, _Queued] = {}
        self._to_index_chars = 0
        self._group = GroupedTransaction(transaction_seconds)
        # Documents of batches recorded in the open grouped transaction, and their text.
        self._uncommitted: dict[int, _Queued] = {}
        self._uncommitted_chars = 0
        self._recorder = Recorder()
        self.workers = workers
        self._pool: PreparePool | None = None
        self._last_index = time.monotonic()
        self._recorded_since_stats = 0
        self.index_in_background = index_in_background
        self.store_in_background = store_in_background
        self._store_writer: StoreWriter | None = None
        self._index_commit: IndexCommit | None = None
        self._bulk_db = BulkDatabase() if index_in_background else None

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
                self.commit_index()
                self.finish_index()
        finally:
            self.close()

    def close(self) -> None:
        if self._group.is_open:  # an error: commit what is whole (see end_after_error)
            try:
                self._sync_store()  # the bytes are durable before the rows commit
            except BaseException as exc:
                log.warning("the store could not be synced after a failed import: %s", exc)
                self._group.rollback()
            else:
                self._group.end_after_error()
            self._take_uncommitted()  # their rows stay unindexed; reconciliation sees to them
        if self._bulk_db is not None:
            self._bulk_db.close()
            self._bulk_db = None
        if self._index_commit is not None:  # an error elsewhere: let it end, mark nothing
            self._index_commit.join()
            self._index_commit = None
        if self._pool is not None:
            if self._inflight is not None:  # abandoned (an error): nothing of it was written
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool = None
            self._inflight = None
        if self._store_writer is not None:  # before the store it writes to is closed
            self._store_writer.close()
            self._store_writer = None
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
            ran = self.flush()
            if not self.keep_results:  # returned by the next flush() or submit() instead
                self._ran_in_add = ran

    def flush(self) -> list[IngestResult]:
        """Run every request added so far through all the steps; their results (with
        ``keep_results=False``, also those of batches ``add()`` ran since the last call)."""
        results, self._ran_in_add = self._ran_in_add, []
        if self._inflight is not None:
            batch, pending = self._inflight
            self._inflight = None
            results += self._run(batch, self._collect(batch, pending))
        batch = self._take()
        if batch:
            results += self._run(batch, self._prepare(batch))
        self._commit_group()
        if self.keep_results:
            self.results.extend(results)
        return results

    def submit(self) -> list[IngestResult]:
        """Hand the requests added so far to the workers, finish the batch handed over
        by the previous call and return its results (without workers: ``flush()``)."""
        if not self.workers:
            return self.flush()
        previous = None
        if self._inflight is not None:
            batch, pending = self._inflight
            self._inflight = None
            previous = (batch, self._collect(batch, pending))
        batch = self._take()
        if batch:  # the workers prepare it while the previous batch is recorded here
            self._inflight = (batch, self._start(batch))
        results, self._ran_in_add = self._ran_in_add, []
        if previous:
            results += self._run(*previous)
        if self.keep_results:
            self.results.extend(results)
        return results

    def _take(self) -> list[IngestRequest]:
        batch, self._pending = self._pending, []
        self._pending_bytes = 0
        return batch

    def _workers(self) -> PreparePool:
        if self._pool is None:
            self._pool = PreparePool(self.store, self.workers)
        return self._pool

    # --- the steps, a batch at a time ------------------------------------------------

    def _prepare(self, batch: list[IngestRequest]) -> list[Prepared]:
        if self.workers and len(batch) > 1:
            return self._collect(batch, self._start(batch))
        return prepare_in_process([request.raw for request in batch])

    def _start(self, batch: list[IngestRequest]) -> PendingBatch | None:
        """Hand the batch's messages to the workers, except big ones: shipping those to
        a worker and their sealed form back would hold several copies in memory; they
        are parsed here and streamed into the store instead."""
        raws = [r.raw for r in batch if len(r.raw) <= WORKER_MAX_BYTES]
        return self._workers().submit(raws) if raws else None

    def _collect(self, batch: list[IngestRequest], pending: PendingBatch | None) -> list[Prepared]:
        done = iter(pending.get() if pending is not None else [])
        return [next(done) if len(r.raw) <= WORKER_MAX_BYTES else prepare_one(r.raw) for r in batch]

    def _run(self, batch: list[IngestRequest], prepared: list[Prepared]) -> list[IngestResult]:
        items = [
            BatchItem(request=request, sha256=sha, parsed=parsed, prepared=blob)
            for request, (sha, parsed, blob) in zip(batch, prepared, strict=True)
        ]
        self._deduplicate(items)
        self._record(items, self._store(items))
        self._recorded_since_stats += len(items)
        if self._recorded_since_stats >= PLANNER_STATS_EVERY:
            self._recorded_since_stats = 0
            refresh_planner_statistics()
        if self.index:
            self._index(items)
        self._recorder.filed = {}
        waiting = self._uncommitted_chars + self._to_index_chars
        if self._group.due() or waiting >= MAX_PENDING_INDEX_CHARS:
            self._commit_group()
        tenant_id = self.tenant.pk
        return [
            IngestResult(
                message=result_message(item, tenant_id),
                stored=item.stored,
                placements_added=item.placements_added,
                problems=list(item.parsed.problems),
            )
            for item in items
            if item.pk is not None
        ]

    def _deduplicate(self, items: list[BatchItem]) -> None:
        """Find the messages recorded already. Only those the store holds are looked up:
        a message is recorded only once its bytes are stored, so the others have no
        row (on a first import, none has). Should a row exist all the same (its bytes
        deleted under it, say), recording it meets the row and reads it instead."""
        shas = self.store.known({item.sha256 for item in items})
        existing = {m.sha256: m for m in Message.objects.filter(sha256__in=shas)} if shas else {}
        for item in items:
            item.message = existing.get(item.sha256)
            if item.message is not None:
                item.pk = item.message.pk

    def _store(self, items: list[BatchItem]) -> StoreWrite | None:
        """Store the new messages' bytes, durable; with ``store_in_background`` in a
        thread that :meth:`_record` waits for before its commit."""
        new: dict[str, BatchItem] = {}
        for item in items:
            if item.message is None and item.sha256 not in new:
                new[item.sha256] = item
                item.stored = True
        if not new:
            return None
        blobs = [item.prepared or item.request.raw for item in new.values()]
        if self.store_in_background:
            if self._store_writer is None:
                # Grouped: fsync and the store's index commit once per database commit.
                self._store_writer = StoreWriter(self.store, hold_open=self._group.seconds > 0)
            return self._store_writer.submit(blobs)
        steps.store_blobs(self.store, blobs)
        return None

    def _record(self, items: list[BatchItem], storing: StoreWrite | None = None) -> None:
        self._group.begin()
        try:
            self._recorder.record(items, storing, savepoint=not self._group.is_open)
        finally:
            if storing is not None:  # an error before its wait(): let it end all the same
                storing.join()
        if self._bulk_db is not None and not self._group.is_open:
            self._bulk_db.committed()

    def _commit_group(self) -> None:
        """Commit the grouped transaction (if open) and queue its documents for the index."""
        if not self._group.is_open:
            return
        try:
            self._sync_store()
        except BaseException:
            self._group.rollback()  # no row may point at bytes that are not durable
            self._take_uncommitted()
            raise
        self._group.commit()
        if self._bulk_db is not None:
            self._bulk_db.committed()
        self._queue_documents(self._take_uncommitted())

    def _take_uncommitted(self) -> dict[int, _Queued]:
        """The documents of the grouped transaction's batches, no longer held here."""
        documents, self._uncommitted = self._uncommitted, {}
        self._uncommitted_chars = 0
        return documents

    def _sync_store(self) -> None:
        if self._store_writer is not None:
            self._store_writer.sync().wait()

    def _index(self, items: list[BatchItem]) -> None:
        """Queue the index documents of new messages, and of known ones that were filed
        somewhere new (their mailbox list in the index changes), for the next commit."""
        todo: dict[int, BatchItem] = {}
        for item in items:
            if item.pk is not None and (item.stored or item.placements_added or item.envelope_grew):
                todo.setdefault(item.pk, item)
        chosen = list(todo.values())
        queued: dict[int, _Queued] = {}
        texts = steps.attachment_texts(self.extractor, [item.parsed for item in chosen])
        where = steps.placements([pk for pk in todo if pk not in self._recorder.filed])
        for item, text in zip(chosen, texts, strict=True):
            item.parsed.attachments = []  # their text is extracted; the index waits
            assert item.pk is not None
            pk = item.pk
            placed = self._recorder.filed.get(pk) or where.get(pk, [])
            if item.row is not None:
                document = row_document(pk, item.row, item.parsed.body_text, text, placed)
            else:
                assert item.message is not None
                document = steps.index_document(item.message, item.parsed, text, placed)
            queued[pk] = _Queued(document, len(placed))
        if self._group.is_open:  # queued once the rows they describe are committed
            self._uncommitted.update(queued)
            self._uncommitted_chars += _text_chars(queued)
        else:
            self._queue_documents(queued)

    def _queue_documents(self, queued: dict[int, _Queued]) -> None:
        self._to_index.update(queued)
        self._to_index_chars += _text_chars(queued)
        waited = time.monotonic() - self._last_index
        due = len(self._to_index) >= self.index_every or waited >= self.index_interval_s
        if self._to_index_chars >= MAX_PENDING_INDEX_CHARS or (due and not self._committing()):
            self.commit_index()

    def _committing(self) -> bool:
        """A commit still runs in the background: the next one is started when it has
        ended rather than the ingestion waiting for it (tantivy's merges can take longer
        than the batches take to arrive), up to MAX_PENDING_INDEX_CHARS of waiting text."""
        return self._index_commit is not None and self._index_commit.is_alive()

    def commit_index(self) -> None:
        """Make everything ingested so far searchable (and mark it indexed)."""
        self._commit_group()
        if self._to_index:
            queued, self._to_index = self._to_index, {}
            self._to_index_chars = 0
            ids = list(queued)
            # Filed elsewhere since its document was built (a concurrent ingest of the
            # same message): the document takes the placements as they are now.
            counts = steps.placement_counts(ids)
            changed = [pk for pk in ids if counts.get(pk, 0) != queued[pk].placements]
            if changed:
                where = steps.placements(changed)
                for pk in changed:
                    steps.place_document(queued[pk].document, where.get(pk, []))
            documents = [q.document for q in queued.values()]
            if self.index_in_background:
                self.finish_index()
                self._index_commit = IndexCommit(self.tenant.pk, documents)
            else:
                TenantIndex.open(self.tenant.pk).add(documents)
                steps.mark_indexed(ids)
        self._last_index = time.monotonic()

    def finish_index(self) -> None:
        """Wait for the commit running in the background (if any); mark its messages."""
        commit, self._index_commit = self._index_commit, None
        if commit is not None:
            steps.mark_indexed(commit.wait())


def _text_chars(queued: dict[int, _Queued]) -> int:
    return sum(len(q.document.body) + len(q.document.attachment_text) for q in queued.values())


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
