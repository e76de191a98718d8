"""The per-tenant index: SHA-256 -> (pack, offset, length), in a SQLite file.

Why SQLite next to the packs and not the Django database: the index is derived data
that must change in step with the pack files it points into (one fsync order, one lock,
one directory to back up or move), it is on the hottest path (a lookup per chunk and per
message, thousands per second) where a round trip to PostgreSQL would cost more than the
whole put, and it can be thrown away and regenerated from the packs alone
(:func:`~mailvault.archive.store.maintenance.rebuild_index_from_packs`). WAL mode lets
readers in other processes look up while the single writer appends.

A message stored inside a block (:mod:`.blocks`) has the block record's location and
its ``slot`` in the block's directory; a message stored as a record of its own has slot
-1. Stores written before blocks existed lack the column: it is added on open.

Checkpoints run in a thread of their own after each commit (:mod:`mailvault.sqlite_checkpoint`).
``synchronous=NORMAL`` is enough: the packs are fsynced before the index commits, and a
commit lost in a power failure is recovered from the pack tail on the next write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from mailvault.archive.store.records import KIND_CHUNK, KIND_RECIPE
from mailvault.sqlite_checkpoint import Checkpointer

_TABLES = {KIND_CHUNK: "chunks", KIND_RECIPE: "messages"}
CACHE_KIB = 32 * 1024  # an upper bound: pages are only cached as they are read
# Keys per ``IN (…)`` lookup: under SQLite's smallest limit of bound parameters (999).
_LOOKUP_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY, committed_end INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    sha BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    sha BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, size INTEGER NOT NULL, slot INTEGER NOT NULL DEFAULT -1
) WITHOUT ROWID;
-- by location: verify walks a pack against it, a compaction finds a pack's records
CREATE INDEX IF NOT EXISTS chunks_location ON chunks (pack, offset);
CREATE INDEX IF NOT EXISTS messages_location ON messages (pack, offset);
"""


@dataclass(frozen=True)
class Location:
    pack: int
    offset: int
    length: int
    size: int  # the stored blob's own size (chunk or whole message)
    slot: int = -1  # the member's place in a block record; -1: a record of its own


@dataclass(frozen=True)
class IndexedRow:
    """One index row pointing into a pack (several share a block record's offset)."""

    kind: int
    sha256: bytes
    slot: int
    length: int


class Index:
    """Not thread-safe by itself: the store serialises access with its own lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # SHA-256 keys land on random pages: a bulk import touches most of the index per
        # batch, so a cache of the whole index of a large tenant saves the page reads.
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        self._add_slot_column()
        self.in_transaction = False
        # Started by the first commit: readers never need it.
        self._checkpointer: Checkpointer | None = None

    def _add_slot_column(self) -> None:
        """Stores written before blocks existed: give their messages slot -1."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if "slot" in columns:
            return
        try:
            self._db.execute("ALTER TABLE messages ADD COLUMN slot INTEGER NOT NULL DEFAULT -1")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise

    def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        try:
            if checkpointer is not None:
                checkpointer.close()
        finally:
            self._db.close()

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self.in_transaction = True

    def commit(self) -> None:
        self._db.execute("COMMIT")
        self.in_transaction = False
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.path, self._db.execute)
        self._checkpointer.committed()

    def rollback(self) -> None:
        if self.in_transaction:
            self._db.execute("ROLLBACK")
            self.in_transaction = False

    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def lookup(self, kind: int, sha: bytes) -> Location | None:
        if kind == KIND_RECIPE:
            query = "SELECT pack, offset, length, size, slot FROM messages WHERE sha = ?"
        else:
            query = "SELECT pack, offset, length, size FROM chunks WHERE sha = ?"
        row = self._db.execute(query, (sha,)).fetchone()
        return None if row is None else Location(*row)

    def known(self, kind: int, shas: list[bytes]) -> set[bytes]:
        """Which of ``shas`` the index holds (one query per few hundred)."""
        found: set[bytes] = set()
        table = _TABLES[kind]
        for start in range(0, len(shas), _LOOKUP_CHUNK):
            part = shas[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(part))
            query = f"SELECT sha FROM {table} WHERE sha IN ({marks})"  # noqa: S608
            found.update(bytes(row[0]) for row in self._db.execute(query, part))
        return found

    def add_many(self, kind: int, rows: list[tuple[bytes, Location]]) -> None:
        """:meth:`add` for many rows of one kind at once."""
        if kind == KIND_RECIPE:
            self._db.executemany(
                "INSERT OR IGNORE INTO messages (sha, pack, offset, length, size, slot) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(sha, x.pack, x.offset, x.length, x.size, x.slot) for sha, x in rows],
            )
            return
        if any(x.slot != -1 for _, x in rows):
            raise ValueError("only messages are stored inside blocks")
        self._db.executemany(
            "INSERT OR IGNORE INTO chunks (sha, pack, offset, length, size) VALUES (?, ?, ?, ?, ?)",
            [(sha, x.pack, x.offset, x.length, x.size) for sha, x in rows],
        )

    def add(self, kind: int, sha: bytes, location: Location) -> None:
        if kind == KIND_RECIPE:
            self._db.execute(
                "INSERT OR IGNORE INTO messages (sha, pack, offset, length, size, slot) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    sha,
                    location.pack,
                    location.offset,
                    location.length,
                    location.size,
                    location.slot,
                ),
            )
            return
        if location.slot != -1:
            raise ValueError("only messages are stored inside blocks")
        self._db.execute(
            "INSERT OR IGNORE INTO chunks (sha, pack, offset, length, size) VALUES (?, ?, ?, ?, ?)",
            (sha, location.pack, location.offset, location.length, location.size),
        )

    def packs(self) -> dict[int, int]:
        """Pack id -> the end of its last record that the index has committed."""
        return dict(self._db.execute("SELECT id, committed_end FROM packs").fetchall())

    def set_committed_end(self, pack: int, end: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO packs (id, committed_end) VALUES (?, ?)", (pack, end)
        )

    def records_in_pack(self, pack: int) -> dict[int, list[IndexedRow]]:
        """Record offset -> the index rows pointing at it, for every indexed record of one
        pack. A record of its own has one row; a block one per indexed member, by slot."""
        found: dict[int, list[IndexedRow]] = {}
        rows = self._db.execute(
            "SELECT offset, sha, -1, length FROM chunks WHERE pack = ?", (pack,)
        ).fetchall()
        for offset, sha, slot, length in rows:
            found.setdefault(offset, []).append(IndexedRow(KIND_CHUNK, bytes(sha), slot, length))
        rows = self._db.execute(
            "SELECT offset, sha, slot, length FROM messages WHERE pack = ? ORDER BY offset, slot",
            (pack,),
        ).fetchall()
        for offset, sha, slot, length in rows:
            found.setdefault(offset, []).append(IndexedRow(KIND_RECIPE, bytes(sha), slot, length))
        return found

    def count(self, kind: int) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {_TABLES[kind]}").fetchone()[0])  # noqa: S608

    def clear(self) -> None:
        """Forget every record (inside the caller's transaction): for rebuilds."""
        for table in ("chunks", "messages", "packs"):
            self._db.execute(f"DELETE FROM {table}")  # noqa: S608
