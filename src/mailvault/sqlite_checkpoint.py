"""WAL checkpoints of a busy SQLite database in a thread of their own.

In WAL mode SQLite copies the log back into the database file (a checkpoint, with an
fsync) inside the commit that pushed the log past 1,000 pages, so the writing thread
pays for it. A bulk import commits a batch every fraction of a second, each touching
pages all over its SHA-256 indexes; with automatic checkpoints the importing thread
spent about 4 % of its time in them (py-spy on the R-help import, issue 3).
:class:`Checkpointer` turns them off for the writer's connection and runs a passive
checkpoint from a connection of its own after each commit, in a daemon thread (SQLite
releases the GIL while it works), so the writer goes on meanwhile. A passive checkpoint
never blocks readers or writers; it copies what it can, and the log is reused from its
start as soon as one has caught up, as with automatic checkpoints.

Checkpoints are at least ``MIN_INTERVAL_S`` apart: commits in between are copied back
together, so a page the next batch dirties again is copied once, not once per commit.
On the R-help import this took the checkpoints from 1.8 to 0.8 CPU seconds (one after
each of ~350 commits, against 44), and the log stays at about a second of writes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

MIN_INTERVAL_S = 1.0


class Checkpointer:
    """Passive checkpoints of the database at ``path`` in a thread. The writer calls
    ``disable(execute)`` with its own connection's ``execute`` first, :meth:`committed`
    after each commit, and :meth:`close` at the end (one last checkpoint, automatic
    checkpoints back on)."""

    def __init__(self, path: Path | str, execute: Callable[[str], object]) -> None:
        self._path = str(path)
        self._execute = execute
        self._wake = threading.Condition()
        self._due = False
        self._closed = False
        self.checkpoints = 0
        self.last_error: sqlite3.Error | None = None
        execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A commit went into the log: checkpoint it soon."""
        with self._wake:
            self._due = True
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            if self._closed:
                return
            self._due = self._closed = True
            self._wake.notify()
        self._thread.join()
        self._execute("PRAGMA wal_autocheckpoint=1000")  # the thread has ended either way

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=60)
        last = float("-inf")  # the first checkpoint runs at once
        try:
            while True:
                with self._wake:
                    while not self._due:
                        self._wake.wait()
                    # Let the commits of the next moment join this checkpoint.
                    wait = last + MIN_INTERVAL_S - time.monotonic()
                    if wait > 0 and not self._closed:
                        self._wake.wait_for(lambda: self._closed, timeout=wait)
                    self._due = False
                    closing = self._closed
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy, say: the next one catches up
                    self.last_error = exc
                last = time.monotonic()
                if closing:
                    return
        finally:
            db.close()
