"""WAL checkpoints in a thread of their own (mailvault.sqlite_checkpoint)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from mailvault.archive.store import BlobStore
from mailvault.sqlite_checkpoint import MIN_INTERVAL_S, Checkpointer

KEY = bytes(range(32))


def writer(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    return db


def commit_batches(db: sqlite3.Connection, batches: int, after: object = None) -> None:
    for _ in range(batches):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO t VALUES (?, ?)", [(os.urandom(32), os.urandom(200)) for _ in range(500)]
        )
        db.execute("COMMIT")
        if isinstance(after, Checkpointer):
            after.committed()


def wal_frames(path: Path) -> int:
    """Frames in the log that no checkpoint has copied yet (from a connection of its own)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        _busy, log, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log) - int(copied)
    finally:
        other.close()


def wait_for_checkpoints(checkpointer: Checkpointer, count: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while checkpointer.checkpoints < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return checkpointer.checkpoints >= count


def checkpointed_writer(path: Path) -> tuple[sqlite3.Connection, Checkpointer]:
    db = writer(path)
    return db, Checkpointer(path, db.execute)


def autocheckpoint(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_the_writer_stops_checkpointing_and_the_thread_keeps_the_log_copied(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    db, checkpointer = checkpointed_writer(path)
    assert autocheckpoint(db) == 0
    commit_batches(db, 40, after=checkpointer)
    assert wait_for_checkpoints(checkpointer, 1, within=10)
    assert checkpointer.last_error is None
    checkpointer.close()
    assert autocheckpoint(db) == 1000
    # The last checkpoint at close copied everything; readers see every row.
    assert wal_frames(path) == 0
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 40 * 500
    checkpointer.close()  # twice is harmless


def test_commits_close_together_share_a_checkpoint_and_a_late_one_gets_its_own(
    tmp_path: Path,
) -> None:
    db, checkpointer = checkpointed_writer(tmp_path / "db.sqlite3")
    started = time.monotonic()
    commit_batches(db, 40, after=checkpointer)
    burst = time.monotonic() - started
    assert wait_for_checkpoints(checkpointer, 1, within=10)
    time.sleep(MIN_INTERVAL_S * 1.5)
    # One checkpoint per MIN_INTERVAL_S at most (plus the first, at once), not one each.
    assert checkpointer.checkpoints <= 2 + int(burst / MIN_INTERVAL_S)
    before = checkpointer.checkpoints
    commit_batches(db, 1, after=checkpointer)
    # Not left for close(): the thread copies it once the interval has passed.
    assert wait_for_checkpoints(checkpointer, before + 1, within=MIN_INTERVAL_S + 5)
    checkpointer.close()


def test_without_commits_nothing_is_checkpointed_and_close_is_quick(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = writer(path)
    checkpointer = Checkpointer(path, db.execute)
    start = time.monotonic()
    checkpointer.close()
    assert time.monotonic() - start < 5
    assert checkpointer.checkpoints == 1  # the one at close, on an empty log


def test_the_blob_store_index_checkpoints_in_the_background(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store:
        for batch in range(20):
            with store.batch():
                for i in range(50):
                    store.put(f"Subject: {batch}-{i}\r\n\r\n{os.urandom(64).hex()}\r\n".encode())
        checkpointer = store._index._checkpointer
        assert checkpointer is not None
        assert autocheckpoint(store._index._db) == 0
    assert checkpointer.checkpoints > 0 and checkpointer.last_error is None
    assert wal_frames(tmp_path / "index.sqlite3") == 0
    with BlobStore(tmp_path, KEY) as again:
        assert again.message_count() == 20 * 50
