"""The two steps a bulk import runs in threads beside the ingesting one (see
:class:`mailvault.ingestion.pipeline.Ingestor`): the store write of the batch being
recorded, and the index commit of the documents queued so far. Each hands its error to
the ingesting thread, which decides what it means."""

from __future__ import annotations

import contextlib
import queue
import threading

from mailvault.archive.store import BlobStore, PreparedBlob
from mailvault.ingestion import steps
from mailvault.search import IndexDocument, TenantIndex


class IndexCommit(threading.Thread):
    """One index commit running beside the ingestion (``index_in_background``).

    tantivy releases the GIL while it commits and merges, so the next batches are
    parsed, stored and recorded meanwhile; the messages are marked indexed by the
    ingesting thread once the commit is known to have succeeded.
    """

    def __init__(self, tenant_id: int, documents: list[IndexDocument]) -> None:
        super().__init__(name="index-commit", daemon=True)
        self.tenant_id = tenant_id
        self.documents = documents
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            TenantIndex.open(self.tenant_id).add(self.documents)
        except BaseException as exc:  # handed to the ingesting thread by wait()
            self.error = exc

    def wait(self) -> list[int]:
        """The ids committed; raises what the commit raised."""
        self.join()
        if self.error is not None:
            raise self.error
        return [d.message_id for d in self.documents]


class StoreWrite:
    """A batch's store write (append, index, fsync), done by a :class:`StoreWriter`;
    with ``blobs`` None, the sync of the writes held open (see ``hold_open``)."""

    def __init__(self, blobs: list[bytes | PreparedBlob] | None) -> None:
        self.blobs = blobs
        self.error: BaseException | None = None
        self._done = threading.Event()

    def finished(self, error: BaseException | None = None) -> None:
        self.blobs = []
        self.error = error
        self._done.set()

    def join(self) -> None:
        """Wait until the write has ended, whatever its outcome."""
        self._done.wait()

    def wait(self) -> None:
        """Wait until the write has ended; raises what it raised."""
        self._done.wait()
        if self.error is not None:
            raise self.error


class StoreWriter:
    """A thread writing batches to the store, one after the other, beside the recording
    of the same batches (``store_in_background``). Both are mostly SQLite and file work,
    which runs without the GIL, so the two overlap; the database commits a batch only
    after its :meth:`StoreWrite.wait`, so the bytes are durable before any row points at
    them, as when the steps run one after the other. One thread for the whole import:
    starting one per batch cost the ingesting thread 3 % of its time, waiting for the new
    thread to be scheduled.

    ``hold_open``: the writes are made durable (fsync, then the store's index commit) only
    by :meth:`sync`, not after each batch, for a caller that commits its database once for
    several batches (``Ingestor(transaction_seconds=...)``): it syncs before that commit."""

    def __init__(self, store: BlobStore, *, hold_open: bool = False) -> None:
        self._store = store
        self._hold_open = hold_open
        self._open_batch: contextlib.AbstractContextManager[BlobStore] | None = None
        self._jobs: queue.SimpleQueue[StoreWrite | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-write", daemon=True)
        self._thread.start()

    def submit(self, blobs: list[bytes | PreparedBlob]) -> StoreWrite:
        job = StoreWrite(blobs)
        self._jobs.put(job)
        return job

    def sync(self) -> StoreWrite:
        """Make every write submitted so far durable; wait() on the result."""
        job = StoreWrite(None)
        self._jobs.put(job)
        return job

    def close(self) -> None:
        """End the thread once the writes submitted so far are done (and durable)."""
        self.sync()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if job.blobs is None:
                    self._end_open_batch()
                else:
                    if self._hold_open and self._open_batch is None:
                        self._open_batch = self._store.batch()
                        self._open_batch.__enter__()
                    steps.store_blobs(self._store, job.blobs)  # nested: no fsync of its own
            except BaseException as exc:  # handed to the ingesting thread by wait()
                job.finished(exc)
            else:
                job.finished()

    def _end_open_batch(self) -> None:
        """fsync, then the store's index commit (on a failure too, as any batch does:
        whole records stay, a torn tail is cut off by the next writer)."""
        batch, self._open_batch = self._open_batch, None
        if batch is not None:
            batch.__exit__(None, None, None)
