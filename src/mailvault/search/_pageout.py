"""Keep the index files tantivy reads during a merge out of the process's resident set.

tantivy reads segments through memory maps. A merge reads every segment it merges, so
each page it touched stays mapped (counted in RSS as file-backed) until the merged
segments are deleted. tantivy's merge policy (not configurable from tantivy-py) now and
then merges nearly the whole index, so without this the peak RSS of a big import grew
with the mailbox: +180 MB at 160,000 R-help messages, +330 MB at 320,000 (issues 3, 7).

While a writer commits and merges, :class:`MergePageOut` watches the file-backed RSS
and, once it grew by more than ``PAGE_OUT_AFTER_BYTES``, asks the kernel to page out the
mapped pages of this index's files (``madvise(MADV_PAGEOUT)``). The pages are clean
file pages: the kernel drops them (pages another process maps are left alone) and a
later read faults them in again, so no data can change. ``MADV_PAGEOUT`` never discards
content, so the race with tantivy unmapping and reusing an address is harmless too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

MADV_PAGEOUT = 21  # Linux >= 5.4; older kernels answer EINVAL and nothing happens
PAGE_OUT_AFTER_BYTES = 32 << 20
POLL_SECONDS = 0.05


def _find_madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").madvise
    except (OSError, AttributeError):  # not glibc / not Linux
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _find_madvise()


def rss_file_bytes() -> int:
    """File-backed resident memory of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssFile:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def page_out_mappings(directory: Path) -> int:
    """``MADV_PAGEOUT`` every mapping of a file under ``directory``; returns how many."""
    if _madvise is None:
        return 0
    prefix = str(directory).rstrip("/") + "/"
    done = 0
    try:
        with open("/proc/self/maps") as f:
            lines = f.readlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].startswith(prefix):
            continue
        start, _, end = parts[0].partition("-")
        lo, hi = int(start, 16), int(end, 16)
        _madvise(lo, hi - lo, MADV_PAGEOUT)  # errors (gone meanwhile, EINVAL) are fine
        done += 1
    return done


class MergePageOut:
    """Context manager: a watcher thread for the duration of a commit and its merges."""

    def __init__(self, directory: Path, *, after_bytes: int | None = None) -> None:
        self.directory = directory
        self.after_bytes = PAGE_OUT_AFTER_BYTES if after_bytes is None else after_bytes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.page_outs = 0

    def __enter__(self) -> MergePageOut:
        if _madvise is not None:
            self._thread = threading.Thread(
                target=self._watch, args=(rss_file_bytes(),), name="index-pageout", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, base: int) -> None:
        while not self._stop.wait(POLL_SECONDS):
            if rss_file_bytes() - base > self.after_bytes:
                page_out_mappings(self.directory)
                self.page_outs += 1
