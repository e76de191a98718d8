"""How much smaller the store could be with records compressed across messages (issue 3).

    .venv/bin/python bench/pack_compression.py [--months 40] [--workdir var/bench-pack]
    .venv/bin/python bench/pack_compression.py --store [--targets 1,65536,262144,1048576]

Today every message is its own zstd frame (level 3) before encryption. On small plain-text
mail that stops near half the raw size, because each frame starts without any context.
This splits the first N R-help months (in file-name order) into messages, as the mbox
reader does, and prints the compressed size against the raw size: per message, and over
blocks of consecutive messages of 64 KB, 256 KB and 1 MB at zstd levels 3 and 9. It
measures sizes only; nothing is stored.

With ``--store`` the messages go through the real store instead (``BlobStore.prepare`` and
``put_prepared`` in batches of 1000, as the import pipeline does), once per block target
(1: every message a record of its own, as before blocks), and it prints the pack files'
size against the raw size, the CPU per message of the writer, and the time to read one
message: cold (its block read, decrypted and decompressed) and in file order (the block
cache at work, as export and reindex read).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

import zstandard
from archive_vs_notmuch import ROOT, unpack

from mailvault.archive.store import BlobStore

# A pipermail month: each message starts with "From <sender> at <host>  <date>".
_MESSAGE_START = re.compile(rb"\n(?=From [^\n]* at [^\n]*\n)")


def messages(folder: Path, months: int) -> list[bytes]:
    found: list[bytes] = []
    for path in sorted(folder.glob("*.txt"))[:months]:
        found += [part for part in _MESSAGE_START.split(path.read_bytes()) if part]
    return found


def blocks(items: list[bytes], size: int) -> list[bytes]:
    out: list[bytes] = []
    pending: list[bytes] = []
    filled = 0
    for item in items:
        pending.append(item)
        filled += len(item)
        if filled >= size:
            out.append(b"".join(pending))
            pending, filled = [], 0
    if pending:
        out.append(b"".join(pending))
    return out


def store_sizes(mails: list[bytes], target: int) -> None:
    """Store the messages with one block target; print size, CPU and read times."""
    raw = sum(map(len, mails))
    root = Path(tempfile.mkdtemp(prefix="mailvault-bench-blocks-"))
    try:
        with BlobStore(root, os.urandom(32), block_target=target) as store:
            cpu = time.process_time()
            prepared = [store.prepare(m) for m in mails]  # in the pipeline: worker processes
            prepare_cpu = time.process_time() - cpu
            cpu = time.process_time()
            for first in range(0, len(prepared), 1000):
                with store.batch():
                    for item in prepared[first : first + 1000]:
                        store.put_prepared(item, durable=False)
            put_cpu = time.process_time() - cpu
            stored = sum(p.stat().st_size for p in (root / "packs").iterdir())
            shas = [p.sha256.hex() for p in prepared]
            sample = random.Random(1).sample(shas, min(500, len(shas)))
            started = time.perf_counter()
            for sha in sample:
                store._block_cache.clear()
                store.get(sha)
            cold = (time.perf_counter() - started) / len(sample)
            started = time.perf_counter()
            for sha in shas:
                store.get(sha)
            in_order = (time.perf_counter() - started) / len(shas)
    finally:
        shutil.rmtree(root)
    print(
        f"store, blocks of {f'{target >> 10} KB' if target > 1 else 'none'}: "
        f"{stored / raw:.3f} of raw; "
        f"prepare {prepare_cpu / len(mails) * 1e6:.0f} us/msg, put_prepared "
        f"{put_cpu / len(mails) * 1e6:.0f} us/msg CPU; read one cold {cold * 1e3:.2f} ms, "
        f"in order {in_order * 1e6:.0f} us",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-pack")
    parser.add_argument("--store", action="store_true", help="measure the real store")
    parser.add_argument("--targets", default="1,65536,262144,1048576")
    args = parser.parse_args()
    mails = messages(unpack(args.workdir), args.months)
    raw = sum(map(len, mails))
    print(f"{len(mails)} messages, {raw / 1e6:.1f} MB raw ({args.months} months)")
    if args.store:
        for target in map(int, args.targets.split(",")):
            store_sizes(mails, target)
        return
    level3 = zstandard.ZstdCompressor(level=3)
    per_message = sum(len(level3.compress(m)) for m in mails)
    print(f"per message, zstd 3:        {per_message / raw:.3f} of raw")
    for size in (64 << 10, 256 << 10, 1 << 20):
        for level in (3, 9):
            compressor = zstandard.ZstdCompressor(level=level)
            total = sum(len(compressor.compress(b)) for b in blocks(mails, size))
            print(f"blocks of {size >> 10:>4} KB, zstd {level}: {total / raw:.3f} of raw")


if __name__ == "__main__":
    main()
