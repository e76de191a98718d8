"""How much smaller the store could be with records compressed across messages (issue 3).

    .venv/bin/python bench/pack_compression.py [--months 40] [--workdir var/bench-pack]

Today every message is its own zstd frame (level 3) before encryption. On small plain-text
mail that stops near half the raw size, because each frame starts without any context.
This splits the first N R-help months (in file-name order) into messages, as the mbox
reader does, and prints the compressed size against the raw size: per message, and over
blocks of consecutive messages of 64 KB, 256 KB and 1 MB at zstd levels 3 and 9. It
measures sizes only; nothing is stored.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import zstandard
from archive_vs_notmuch import ROOT, unpack

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-pack")
    args = parser.parse_args()
    mails = messages(unpack(args.workdir), args.months)
    raw = sum(map(len, mails))
    print(f"{len(mails)} messages, {raw / 1e6:.1f} MB raw ({args.months} months)")
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
