"""One database transaction kept open across several batches of a bulk import.

A batch of a bulk import inserts its Message rows and commits. On SQLite each commit
writes every page the batch changed to the WAL, and the Message table's SHA-256 unique
index takes each insert to a random page: a batch of 2,000 rows rewrote about one index
page per row, commit after commit. Committing once a second instead (several batches)
writes each such page once per second. Measured on the R-help rows (a copy of the table,
172,090 inserts): 18.6 µs per row with a commit every 2,000 rows, 11.7 with one every
10,000.

The batches run without savepoints of their own: a savepoint copies each page a batch
first changes into a statement journal, and the import ran 2 % slower with them
(bench/import_cpu.py, alternating pairs). So a failure while a batch is recorded rolls
the whole group back, a second of work at most, which the next run records again (the
bytes it finds stored are deduplicated). The store's writes of the group's batches are
made durable once, just before the commit (``StoreWriter(hold_open=True)``; its own
index has a SHA-256 key too, and the import ran 2 to 6 % faster so, three alternating
pairs): no committed row ever points at bytes that are not durable. Index documents
wait for the commit (the caller's part): an index must never name a message id that a
rollback could hand out again.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError, transaction

log = logging.getLogger("mailvault.ingestion")


class GroupedTransaction:
    """Begun before a batch is recorded, committed once ``seconds`` have passed (see
    :meth:`due`) or when the caller needs what was recorded to be durable. With
    ``seconds`` 0 it never begins: each batch commits on its own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._atomic: transaction.Atomic | None = None
        self._began = 0.0

    @property
    def is_open(self) -> bool:
        return self._atomic is not None

    def begin(self) -> None:
        if self._atomic is None and self.seconds > 0:
            atomic = transaction.atomic()
            atomic.__enter__()
            self._atomic, self._began = atomic, time.monotonic()

    def due(self) -> bool:
        return self._atomic is not None and time.monotonic() - self._began >= self.seconds

    def commit(self) -> bool:
        """Commit what the batches recorded; False when nothing was open."""
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return False
        atomic.__exit__(None, None, None)  # on a failed commit: rolls back and raises
        return True

    def rollback(self) -> None:
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)

    def end_after_error(self) -> None:
        """The import failed. A failure while a batch was recorded marked the transaction
        for rollback, and this rolls it back; after a failure elsewhere (reading a file,
        a worker) the batches recorded are whole, and this commits them. If that commit
        fails, it rolls back: the next run records those messages again."""
        try:
            self.commit()
        except DatabaseError as exc:
            log.warning("the last batches of a failed import were not kept: %s", exc)
