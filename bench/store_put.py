"""Blob store put() throughput: synthetic text messages, group-committed.

    .venv/bin/python bench/store_put.py [--count 10000] [--size 10240] [--batch 1000]

Prints msg/s and MB/s of ``BlobStore.put`` (hash, split, zstd, AES-GCM, append, index)
with one fsync per batch. Not a timed test; the machine's load changes the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailvault.archive.store import BlobStore

_WORDS = [
    "the",
    "archive",
    "message",
    "meeting",
    "report",
    "please",
    "find",
    "attached",
    "regards",
    "thanks",
    "data",
    "project",
    "schedule",
    "invoice",
    "customer",
    "support",
    "question",
    "answer",
    "tomorrow",
    "review",
    "draft",
]


def synthetic_message(index: int, size: int, rng: random.Random) -> bytes:
    header = (
        f"From: user{rng.randrange(500)}@example.com\r\n"
        f"To: team{rng.randrange(50)}@example.com\r\n"
        f"Subject: {' '.join(rng.choices(_WORDS, k=6))} #{index}\r\n"
        f"Message-ID: <{index}.{rng.getrandbits(64):x}@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    body = bytearray()
    while len(header) + len(body) < size:
        body += (" ".join(rng.choices(_WORDS, k=12)) + "\r\n").encode()
    return header + bytes(body[: size - len(header)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--threads", type=int, default=0, help="prepare() in this many threads (0: put())"
    )
    args = parser.parse_args()
    rng = random.Random(42)
    messages = [synthetic_message(i, args.size, rng) for i in range(args.count)]
    total = sum(map(len, messages))
    root = Path(tempfile.mkdtemp(prefix="mailvault-bench-store-"))
    try:
        with BlobStore(root, os.urandom(32)) as store:
            started, cpu_started = time.perf_counter(), time.process_time()
            if args.threads:
                with ThreadPoolExecutor(args.threads) as pool, store.batch():
                    for n, prepared in enumerate(pool.map(store.prepare, messages), 1):
                        store.put_prepared(prepared, durable=False)
                        if n % args.batch == 0:
                            store.flush()
            else:
                for first in range(0, len(messages), args.batch):
                    store.put_many(messages[first : first + args.batch])
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        stored = sum(p.stat().st_size for p in (root / "packs").iterdir())
    finally:
        shutil.rmtree(root)
    print(f"{args.count} messages of {args.size} bytes, batches of {args.batch}")
    print(f"put: {args.count / elapsed:,.0f} msg/s, {total / elapsed / 1e6:,.1f} MB/s (wall)")
    print(f"cpu: {cpu / args.count * 1e6:,.0f} us per message ({args.count / cpu:,.0f} msg/s)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"packs: {stored / total:.2f} of the raw size")


if __name__ == "__main__":
    main()
