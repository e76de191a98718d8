"""The SQLite database tuned for a bulk import while it runs (see :class:`BulkDatabase`)."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.transaction import TransactionManagementError

from mailvault.sqlite_checkpoint import Checkpointer

log = logging.getLogger("mailvault.ingestion")


class BulkDatabase:
    """The SQLite database tuned for a bulk import while it runs: checkpoints in a thread
    of their own (see :mod:`mailvault.sqlite_checkpoint`) and a bigger page cache, since
    the SHA-256 index takes every insert to a random page (measured on the R-help
    database: 15 -> 9.5 µs per Message row with 16 MB instead of the default 2 MB).
    Put back as it was by :meth:`close`. Nothing to do for other databases."""

    CACHE_KIB = 16 * 1024

    def __init__(self) -> None:
        self.checkpointer: Checkpointer | None = None
        self._cache: int | None = None
        if connection.vendor != "sqlite":
            return
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            (mode,) = cursor.fetchone()
            cursor.execute("PRAGMA database_list")
            path = next((row[2] for row in cursor.fetchall() if row[1] == "main"), "")
            cursor.execute("PRAGMA cache_size")
            (self._cache,) = cursor.fetchone()
            cursor.execute(f"PRAGMA cache_size=-{self.CACHE_KIB}")
        if str(mode).lower() == "wal" and path:  # not in memory (tests)
            self.checkpointer = Checkpointer(path, _execute)

    def committed(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def close(self) -> None:
        """Put the settings back. Called on the way out of a failed import too, so a
        connection that can no longer run statements (an aborted outer transaction, say)
        is left as it is rather than raising over the import's own error."""
        checkpointer, self.checkpointer = self.checkpointer, None
        cache, self._cache = self._cache, None
        try:
            if checkpointer is not None:
                checkpointer.close()
            if cache is not None:
                _execute(f"PRAGMA cache_size={int(cache)}")
        except (DatabaseError, TransactionManagementError) as exc:
            log.warning("could not restore the database settings after an import: %s", exc)


def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)
