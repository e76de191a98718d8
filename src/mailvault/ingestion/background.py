"""The two steps a bulk import runs in threads beside the ingesting one (see
:class:`mailvault.ingestion.pipeline.Ingestor`): the store write of the batch being
recorded, and the index commit of the documents queued so far. Each hands its error to
the ingesting thread, which decides what it means."""

from __future__ import annotations

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
    """A batch's store write (append, index, fsync), done by a :class:`StoreWriter`."""

    def __init__(self, blobs: list[bytes | PreparedBlob]) -> None:
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
    thread to be scheduled."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._jobs: queue.SimpleQueue[StoreWrite | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-write", daemon=True)
        self._thread.start()

    def submit(self, blobs: list[bytes | PreparedBlob]) -> StoreWrite:
        job = StoreWrite(blobs)
        self._jobs.put(job)
        return job

    def close(self) -> None:
        """End the thread once the writes submitted so far are done."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                steps.store_blobs(self._store, job.blobs)
            except BaseException as exc:  # handed to the ingesting thread by wait()
                job.finished(exc)
            else:
                job.finished()
