"""The two steps a bulk import runs in threads beside the ingesting one (see
:class:`mailvault.ingestion.pipeline.Ingestor`): the store write of the batch being
recorded, and the index commit of the documents queued so far. Each hands its error to
the ingesting thread, which decides what it means."""

from __future__ import annotations

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


class StoreWrite(threading.Thread):
    """A batch's store write (append, index, fsync) running beside the recording of the
    same batch (``store_in_background``). Both are mostly SQLite and file work, which
    runs without the GIL, so the two overlap; the database commits only after
    :meth:`wait`, so the bytes are durable before any row points at them, as when the
    steps run one after the other."""

    def __init__(self, store: BlobStore, blobs: list[bytes | PreparedBlob]) -> None:
        super().__init__(name="store-write", daemon=True)
        self.store = store
        self.blobs = blobs
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            steps.store_blobs(self.store, self.blobs)
        except BaseException as exc:  # handed to the ingesting thread by wait()
            self.error = exc

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error
