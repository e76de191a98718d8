"""The merge page-out keeps index files a writer read out of the resident set (issue 3)."""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from mailvault.search import Scope, TenantIndex, _pageout
from mailvault.search._pageout import MergePageOut, page_out_mappings, rss_file_bytes

from .conftest import make_doc

SIZE = 64 << 20


def _mapped_file(path: Path) -> tuple[mmap.mmap, IO[bytes]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * SIZE)
    reader = path.open("rb")
    return mmap.mmap(reader.fileno(), 0, access=mmap.ACCESS_READ), reader


def _touch(m: mmap.mmap) -> int:
    return sum(m[i] for i in range(0, SIZE, mmap.PAGESIZE))


def test_page_out_drops_mapped_pages_of_the_directory_only(tmp_path: Path) -> None:
    if _pageout._madvise is None:
        pytest.skip("no madvise in this libc")
    inside, fi = _mapped_file(tmp_path / "index" / "seg.store")
    outside, fo = _mapped_file(tmp_path / "other" / "seg.store")
    try:
        before = rss_file_bytes()
        assert _touch(inside) == _touch(outside) == ord("x") * (SIZE // mmap.PAGESIZE)
        grown = rss_file_bytes()
        assert grown - before > SIZE  # both files resident
        assert page_out_mappings(tmp_path / "index") == 1
        after = rss_file_bytes()
        assert grown - after > SIZE // 2  # the index file left the resident set...
        assert after - before > SIZE // 2  # ...the other one stayed
        assert inside[:3] == b"xxx" and inside[SIZE - 1 :] == b"x"  # content unchanged
    finally:
        inside.close()
        outside.close()
        fi.close()
        fo.close()


def test_watcher_pages_out_once_file_memory_grew(tmp_path: Path) -> None:
    if _pageout._madvise is None:
        pytest.skip("no madvise in this libc")
    m, f = _mapped_file(tmp_path / "index" / "seg.idx")
    try:
        with MergePageOut(tmp_path / "index", after_bytes=8 << 20) as watcher:
            _touch(m)
            deadline = time.monotonic() + 5
            while not watcher.page_outs and time.monotonic() < deadline:
                time.sleep(0.02)
            assert watcher.page_outs >= 1
        with MergePageOut(tmp_path / "elsewhere", after_bytes=1 << 40) as idle:
            _touch(m)
            time.sleep(3 * _pageout.POLL_SECONDS)
        assert idle.page_outs == 0  # below the threshold nothing is paged out
    finally:
        m.close()
        f.close()


def test_index_with_merges_and_page_out_keeps_every_document(
    open_index: Callable[[object], TenantIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small commits make tantivy merge; paging out all the while loses nothing."""
    calls: list[Path] = []
    real = _pageout.page_out_mappings

    def counting(directory: Path) -> int:
        calls.append(directory)
        return real(directory)

    monkeypatch.setattr(_pageout, "page_out_mappings", counting)
    monkeypatch.setattr(_pageout, "PAGE_OUT_AFTER_BYTES", -1)  # page out on every poll
    monkeypatch.setattr(_pageout, "POLL_SECONDS", 0.001)
    index = open_index(7)
    for batch in range(12):
        index.add([make_doc(batch * 50 + i, subject=f"merge probe {batch}") for i in range(50)])
    assert calls and set(calls) == {index.path}
    assert index.count() == 600
    assert index.message_ids() == set(range(600))
    result = index.search("subject:probe", Scope.whole_tenant(), limit=1)
    assert result.total == 600
