"""The shared mail corpus for tests: where it is, unpacked once, and its messages.

The archives live outside the repository (``$MAILVAULT_CORPUS``, else ``../shared/corpus``
beside the project). They are unpacked once into a cache directory keyed by the
archive's name, size and mtime (``$MAILVAULT_CORPUS_CACHE``, else
``/tmp/mailvault-corpus-cache``), so later sessions start at once. When the corpus is
absent the test is skipped with the reason, except under ``CI=true`` where it must exist
and the test fails instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The corpus archives are our own. Their extraction uses tarfile's "data" filter where the
# interpreter has it (3.11.4+; Debian's 3.11.2, which `make` prefers, does not).
TAR_FILTER: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_CACHE = Path("/tmp/mailvault-corpus-cache")

ARCHIVES = {
    "spamassassin": "spamassassin.tar.xz",
    "enron-subset": "enron-subset.tar.xz",
    "tricky-mime": "tricky-mime.tar.xz",
    "r-help": "r-help-mbox.tar.xz",
    "outlook": "outlook.tar.xz",
}


def corpus_dir() -> Path:
    return Path(os.environ.get("MAILVAULT_CORPUS") or DEFAULT_CORPUS)


def _absent(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def corpus_archive(name: str) -> Path:
    """The archive file of corpus ``name`` (a key of ARCHIVES), or a skip."""
    path = corpus_dir() / ARCHIVES[name]
    if not path.is_file():
        _absent(f"corpus file {path} is absent (set MAILVAULT_CORPUS to the corpus folder)")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("MAILVAULT_CORPUS_CACHE") or DEFAULT_CACHE)


def unpacked(name: str) -> Path:
    """The folder the archive of corpus ``name`` is unpacked into (unpacked on first use,
    under a lock, so parallel sessions unpack it once)."""
    archive = corpus_archive(name)
    stat = archive.stat()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"{name}-{stat.st_size}-{int(stat.st_mtime)}"
    done = dest / ".unpacked"
    if done.exists():
        return dest
    with open(cache / f"{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            partial = cache / f"{dest.name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(archive) as tar:
                tar.extractall(partial, **TAR_FILTER)
            partial.rename(dest)
            done.touch()
    return dest


def message_root(name: str) -> Path:
    """The folder holding the messages of corpus ``name`` (the archive's top folder)."""
    root = unpacked(name)
    children = [p for p in root.iterdir() if not p.name.startswith(".")]
    return children[0] if len(children) == 1 and children[0].is_dir() else root


def check_mbox_cover(data: bytes, items: list[tuple[int, bytes]]) -> None:
    """Independent check that splitting an MBOX lost no byte: the file is exactly the
    concatenation of, per message, its ``From `` line, its bytes, and at most the one
    empty line a writer puts before the next ``From `` line."""
    items = sorted(items)
    assert items, "no message read from the MBOX"
    assert items[0][0] == 0, "bytes before the first From line"
    for i, (offset, raw) in enumerate(items):
        end = items[i + 1][0] if i + 1 < len(items) else len(data)
        segment = data[offset:end]
        assert segment.startswith(b"From "), f"no From line at offset {offset}"
        body = segment[segment.index(b"\n") + 1 :]
        assert body in (raw, raw + b"\n", raw + b"\r\n"), (
            f"message at offset {offset}: the archived bytes differ from the file's"
        )


def iter_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            if not filename.startswith("."):
                yield Path(dirpath) / filename


def archive_settings(base: Path) -> dict[str, object]:
    """Settings that put a test's blob store, index and master key under ``base``."""
    return {
        "MAILVAULT_STORE_DIR": base / "store",
        "MAILVAULT_INDEX_DIR": base / "index",
        "MAILVAULT_MASTER_KEY_FILE": base / "master.key",
    }
