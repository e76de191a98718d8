"""Memory of a big search-index build: R-help documents straight through TenantIndex.

    .venv/bin/python bench/index_memory.py [--messages 170000] [--every 5000]
        [--repeat N] [--heap-mb MB] [--threads N] [--workdir var/bench-index] [--quiet]

Reproduces the end-of-run RSS jump of big archiving runs (issues 3 and 7) without the
archive: the first run parses the R-help corpus once into a document cache under
--workdir (not timed); then the documents are added in batches of --every (as the
Ingestor's index_every, with its MAX_PENDING_INDEX_CHARS cap) to a fresh index. After
each commit it prints RSS, anonymous and file-backed parts (/proc/self/status), the
peak seen by a 20 ms sampler since the last line, the segment count and index size.
``--repeat 2`` indexes the corpus twice (340,000 documents: tantivy then merges the
whole index once, at about 320,000); --heap-mb/--threads override the writer settings.
At the end: peak RSS (VmHWM), CPU seconds per 1,000 documents, and a search check.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def status() -> dict[str, int]:
    """VmRSS/VmHWM/RssAnon/RssFile of this process, in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) // 1024
    return out


class Sampler(threading.Thread):
    """Highest RSS/anon/file seen since the last ``take()`` (20 ms period)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.peak: dict[str, int] = {}
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            s = status()
            with self.lock:
                for k in ("VmRSS", "RssAnon", "RssFile"):
                    self.peak[k] = max(self.peak.get(k, 0), s[k])
            time.sleep(0.02)

    def take(self) -> dict[str, int]:
        with self.lock:
            p, self.peak = self.peak, {}
        return p


def build_cache(work: Path, limit: int) -> Path:
    cache = work / f"docs-{limit}.pickle"
    if cache.exists():
        return cache
    from imap_archive import r_help

    from mailvault.ingestion.parse import parse_message

    work.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    n = 0
    with tmp.open("wb") as f:
        for raw in r_help(ROOT / "var" / "bench-imap"):
            p = parse_message(raw)
            row = (
                p.date,
                p.subject,
                p.from_address,
                p.from_name,
                p.to,
                p.cc,
                p.body_text,
                len(raw),
            )
            pickle.dump(row, f, protocol=pickle.HIGHEST_PROTOCOL)
            n += 1
            if n >= limit:
                break
    tmp.rename(cache)
    print(f"cached {n} documents in {cache}", flush=True)
    return cache


def documents(cache: Path, repeat: int = 1) -> Iterator[object]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    mid = 0
    for _ in range(repeat):
        yield from _documents(cache, now, mid)
        mid += 10_000_000


def _documents(cache: Path, now: object, mid: int) -> Iterator[object]:
    from mailvault.search import Address, IndexDocument

    with cache.open("rb") as f:
        while True:
            try:
                date, subject, addr, name, to, cc, body, size = pickle.load(f)
            except EOFError:
                return
            mid += 1
            yield IndexDocument(
                message_id=mid,
                mailbox_ids=[1],
                date=date or now,
                archived_at=now,
                subject=subject,
                sender=Address(addr, name) if addr or name else None,
                to=[Address(a) for a in to if a],
                cc=[Address(a) for a in cc if a],
                folder_paths=["INBOX"],
                body=body,
                size=size,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=170_000)
    ap.add_argument("--every", type=int, default=5000)
    ap.add_argument("--workdir", default="var/bench-index")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="index the corpus this many times")
    ap.add_argument("--heap-mb", type=int, default=0, help="override WRITER_HEAP_BYTES")
    ap.add_argument("--threads", type=int, default=-1, help="override WRITER_THREADS")
    args = ap.parse_args()
    work = ROOT / args.workdir
    cache = build_cache(work, args.messages)

    import django

    os.environ.update(
        MAILVAULT_VAR_DIR=str(work / "var"), DJANGO_SETTINGS_MODULE="mailvault.settings"
    )
    django.setup()
    from mailvault.ingestion.pipeline import MAX_PENDING_INDEX_CHARS
    from mailvault.search import Scope, TenantIndex
    from mailvault.search import index as index_module

    if args.heap_mb:
        index_module.WRITER_HEAP_BYTES = args.heap_mb << 20
    if args.threads >= 0:
        index_module.WRITER_THREADS = args.threads
    base = work / "index"
    shutil.rmtree(base, ignore_errors=True)
    index = TenantIndex.open("bench", base_dir=base)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
    sampler = Sampler()
    sampler.start()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    batch: list[object] = []
    chars = 0
    total = 0

    def commit() -> None:
        nonlocal batch, chars, total
        t = time.monotonic()
        index.add(batch)  # type: ignore[arg-type]
        total += len(batch)
        batch, chars = [], 0
        if args.quiet:
            return
        s, p = status(), sampler.take()
        meta = json.loads((index.path / "meta.json").read_text())
        size = sum(f.stat().st_size for f in index.path.iterdir()) >> 20
        print(
            f"{total:>7} docs  commit {time.monotonic() - t:5.1f}s  rss {s['VmRSS']:4} "
            f"anon {s['RssAnon']:4} file {s['RssFile']:4} | peak rss {p.get('VmRSS', 0):4} "
            f"anon {p.get('RssAnon', 0):4} file {p.get('RssFile', 0):4} | "
            f"segs {len(meta['segments']):3} idx {size:5} MB",
            flush=True,
        )

    for doc in documents(cache, args.repeat):
        batch.append(doc)
        chars += len(doc.body)  # type: ignore[attr-defined]
        if len(batch) >= args.every or chars >= MAX_PENDING_INDEX_CHARS:
            commit()
    if batch:
        commit()
    finish = getattr(index, "finish_bulk", None)
    if callable(finish):
        t = time.monotonic()
        finish()
        print(f"finish_bulk {time.monotonic() - t:.1f}s  {status()}", flush=True)
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    sampler.stop = True
    hwm = status()["VmHWM"]
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    meta = json.loads((index.path / "meta.json").read_text())
    hits = index.search("regression", Scope.whole_tenant(), limit=5)
    print(
        f"documents {total}  wall {wall:.1f}s  cpu {cpu:.1f}s = {cpu / total * 1000:.2f} s/1000"
        f"  peak VmHWM {hwm} MB (ru_maxrss {maxrss} MB)  segments {len(meta['segments'])}"
        f"  count {index.count()}  'regression' hits {hits.total}"
        f"  heap {index_module.WRITER_HEAP_BYTES >> 20} MB"
        f" threads {getattr(index_module, 'WRITER_THREADS', 0)}"
    )


if __name__ == "__main__":
    main()
