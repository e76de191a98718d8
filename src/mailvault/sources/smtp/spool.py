"""The durable spool between the SMTP listener and ingestion.

A message gets its ``250`` only once it is on disk for good: the listener appends it to
the active segment file and waits for the next group commit (one ``fsync`` for every
message that arrived meanwhile). Segments are rolled every second (or at a size) into
``ready/``, where the consumer ingests them and then deletes them. After a crash, the
active segment of the dead process is checked record by record (length, CRC) and what
is whole is handed on; a torn tail was never acknowledged, so the sender retries it.
Ingestion deduplicates, so a segment ingested twice files nothing twice.

Record: MAGIC | u32 header length | u64 body length | header (JSON) | body | u32 CRC32.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"MVS1"
_HEAD = struct.Struct(">4sIQ")
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class SpoolRecord:
    meta: dict[str, object]
    body: bytes


def encode_pieces(meta: dict[str, object], body: bytes) -> tuple[bytes, ...]:
    """A record as the pieces written one after the other (the body is not copied)."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    head = _HEAD.pack(MAGIC, len(header), len(body))
    crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(head)))
    return head, header, body, _CRC.pack(crc)


def read_segment(path: Path) -> Iterator[SpoolRecord]:
    """The whole records of a segment, in order; stops at the first torn or bad one."""
    with path.open("rb") as handle:
        while True:
            head = handle.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return
            magic, header_len, body_len = _HEAD.unpack(head)
            if magic != MAGIC:
                return
            header = handle.read(header_len)
            body = handle.read(body_len)
            crc_bytes = handle.read(_CRC.size)
            if len(header) < header_len or len(body) < body_len or len(crc_bytes) < 4:
                return
            crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(head)))
            if _CRC.unpack(crc_bytes)[0] != crc:
                return
            yield SpoolRecord(json.loads(header), body)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segment files under ``root``: ``active/`` being written, ``ready/`` to ingest."""

    def __init__(self, root: Path, *, roll_seconds: float = 1.0, roll_bytes: int = 64 << 20):
        self.root = root
        self.active_dir = root / "active"
        self.ready_dir = root / "ready"
        self.active_dir.mkdir(parents=True, exist_ok=True)
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        self.roll_seconds = roll_seconds
        self.roll_bytes = roll_bytes
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._counter = 0
        self._pending_cache: tuple[float, int] | None = None

    # --- writing (the listener) ----------------------------------------------------

    def recover(self) -> int:
        """Hand segments left in ``active/`` by a dead process to the consumer.

        Each writer holds an exclusive ``flock`` on its active segment for as long as it
        lives (the kernel drops it when the process dies), so a segment that can be locked
        here has no writer left; one that cannot belongs to a live listener process and
        stays where it is."""
        moved = 0
        for path in sorted(self.active_dir.glob("*.spool")):
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                try:
                    os.replace(path, self.ready_dir / path.name)
                except FileNotFoundError:
                    continue
            moved += 1
        if moved:
            _fsync_dir(self.ready_dir)
        return moved

    def append(self, records: list[tuple[dict[str, object], bytes]]) -> None:
        """Append and make durable (one fsync for the whole list: group commit)."""
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            for meta, body in records:
                for piece in encode_pieces(meta, body):
                    self._file.write(piece)
                    self._size += len(piece)
            self._file.flush()
            os.fsync(self._file.fileno())

    def _open(self) -> None:
        self._counter += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.spool"
        self._path = self.active_dir / name
        self._file = self._path.open("ab")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self.active_dir)
        self._opened_at = time.monotonic()
        self._size = 0

    def roll_if_due(self, *, force: bool = False) -> bool:
        """Move the active segment to ``ready/`` when it is old or big enough."""
        with self._lock:
            if self._file is None or self._path is None:
                return False
            due = (
                force
                or self._size >= self.roll_bytes
                or time.monotonic() - self._opened_at >= self.roll_seconds
            )
            if not due:
                return False
            # Renamed while still open and locked: no other process's recover() can take
            # the segment in between.
            os.replace(self._path, self.ready_dir / self._path.name)
            self._file.close()
            _fsync_dir(self.ready_dir)
            self._file = None
            self._path = None
            return True

    # --- reading (the consumer) ----------------------------------------------------

    def ready_segments(self) -> list[Path]:
        return sorted(self.ready_dir.glob("*.spool"))

    def pending_bytes(self, *, max_age: float = 0.0) -> int:
        """Bytes waiting in the spool; a figure up to ``max_age`` seconds old may be
        reused (the listener asks on every RCPT; the directories are scanned at most
        that often)."""
        now = time.monotonic()
        cached = self._pending_cache
        if max_age and cached is not None and now - cached[0] < max_age:
            return cached[1]
        total = 0
        for directory in (self.active_dir, self.ready_dir):
            for path in directory.glob("*.spool"):
                try:
                    total += path.stat().st_size
                except FileNotFoundError:
                    continue
        self._pending_cache = (now, total)
        return total
