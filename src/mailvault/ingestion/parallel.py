"""Parse and prepare messages on the other cores during bulk imports.

Parsing (Python) and preparing the stored form (hash, split, compress, encrypt) are the
CPU-heavy steps of ingestion and need nothing but the raw bytes and the tenant's store
codec, so a bulk import runs them in forked worker processes and keeps only the ordered
writes (store append, database, index) in the importing process. Workers are forked from
the importer after its store is open and inherit it; they never write to it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from multiprocessing.pool import Pool
from types import TracebackType

from mailvault.archive.store import BlobStore, PreparedBlob
from mailvault.ingestion.parse import ParsedMessage, parse_message

_store: BlobStore | None = None  # the importer's store, inherited by the forked workers

Prepared = tuple[str, ParsedMessage, PreparedBlob | None]


def prepare_one(raw: bytes) -> Prepared:
    """SHA-256, parse, and (in a worker) the stored form of one message."""
    sha = hashlib.sha256(raw).hexdigest()
    prepared = _store.prepare(raw) if _store is not None else None
    return sha, parse_message(raw), prepared


def _parse_only(raw: bytes) -> Prepared:
    return hashlib.sha256(raw).hexdigest(), parse_message(raw), None


class PreparePool:
    """``workers`` forked processes mapping :func:`prepare_one` over batches."""

    def __init__(self, store: BlobStore, workers: int) -> None:
        global _store
        _store = store
        try:
            self._pool: Pool = multiprocessing.get_context("fork").Pool(workers)
        finally:
            _store = None

    def map(self, raws: list[bytes]) -> list[Prepared]:
        return self._pool.map(prepare_one, raws, chunksize=max(1, len(raws) // 16))

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> PreparePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.terminate()
            self._pool.join()


def prepare_in_process(raws: list[bytes]) -> list[Prepared]:
    return [_parse_only(raw) for raw in raws]
