"""Pack files on disk: naming, creation, positional reads, tail repair."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from mailvault.archive.store.records import (
    PACK_HEADER_SIZE,
    DamagedRegion,
    RecordHeader,
    pack_header,
    scan,
)

_SUFFIX = ".pack"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackFiles:
    """The pack directory of one tenant store. Reads are thread-safe (``pread``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._read_fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def path(self, pack_id: int) -> Path:
        return self.directory / f"{pack_id:08d}{_SUFFIX}"

    def ids(self) -> list[int]:
        found = []
        for entry in os.scandir(self.directory):
            name = entry.name
            if name.endswith(_SUFFIX) and name[: -len(_SUFFIX)].isdigit():
                found.append(int(name[: -len(_SUFFIX)]))
        return sorted(found)

    def size(self, pack_id: int) -> int:
        return os.stat(self.path(pack_id)).st_size

    def create(self, pack_id: int) -> int:
        """Create a new pack with its header; returns an append-only write descriptor."""
        fd = os.open(self.path(pack_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        write_all(fd, pack_header(pack_id))
        return fd

    def open_for_append(self, pack_id: int) -> int:
        fd = os.open(self.path(pack_id), os.O_WRONLY | os.O_APPEND)
        if os.fstat(fd).st_size < PACK_HEADER_SIZE:
            # Created but its header never fully reached the disk: start it again.
            os.ftruncate(fd, 0)
            write_all(fd, pack_header(pack_id))
        return fd

    def read(self, pack_id: int, offset: int, length: int) -> bytes:
        fd = self._read_fds.get(pack_id)
        if fd is None:
            with self._lock:
                fd = self._read_fds.get(pack_id)
                if fd is None:
                    fd = os.open(self.path(pack_id), os.O_RDONLY)
                    self._read_fds[pack_id] = fd
        data = os.pread(fd, length, offset)
        while len(data) < length:  # short reads only happen near EOF; retry to be sure
            more = os.pread(fd, length - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def repair_tail(self, pack_id: int, start: int) -> tuple[list[tuple[int, RecordHeader]], int]:
        """The complete records after ``start`` and the end of the last one.

        Anything after it (a record torn by a crash) is cut off. Only bytes beyond what
        the index committed are ever looked at, so earlier records are never touched.
        """
        path = self.path(pack_id)
        end = os.stat(path).st_size
        start = max(start, PACK_HEADER_SIZE)
        found: list[tuple[int, RecordHeader]] = []
        valid_end = start
        with open(path, "rb") as handle:
            for item in scan(handle, start, end, resync=False):
                if isinstance(item, DamagedRegion):
                    break
                found.append((item.offset, item.header))
                valid_end = item.offset + item.header.record_len
        if valid_end < end:
            with open(path, "r+b") as handle:
                handle.truncate(valid_end)
                handle.flush()
                os.fsync(handle.fileno())
        return found, valid_end

    def close(self) -> None:
        with self._lock:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
