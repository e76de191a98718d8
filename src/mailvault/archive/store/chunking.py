"""Splitting a raw message into inline literals and separately stored chunks.

The split looks at the raw bytes only, so it works for any input, malformed MIME and
binary garbage included, and concatenating the segments always gives the input back.
A *run* is a sequence of whole lines made of base64 characters (the first at least 40
long, none longer than 998, the SMTP limit), which is what the body of a base64-encoded
MIME leaf part looks like between its blank line and the next boundary. Runs of at least
``MIN_RUN`` bytes become chunks of their own, keyed by their SHA-256, so the same
attachment sent in different messages (by the same encoder) is stored once.

Everything else is literal. Short literals are kept inline in the message's recipe;
long ones become chunks too, so neither recipes nor chunks grow without bound. Runs and
literals longer than ``MAX_CHUNK`` are cut into ``MAX_CHUNK`` pieces counted from their
start, which keeps the split identical whether the message arrives as one buffer or as a
stream in blocks of any size (a property the tests check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MIN_RUN = 4 * 1024
MAX_CHUNK = 1024 * 1024
INLINE_MAX = 256 * 1024
INLINE_BUDGET = 1024 * 1024
_MAX_LINE = 1000  # 998 characters plus CR LF

# Every base64 character maps to "A" in a masked copy of the input, so the patterns
# below match a single literal (several times faster in ``re`` than a character class)
# and a run's first line shows up as 40 "A"s in a row, found with a fast substring
# search before the regex looks closer. Other bytes are unchanged by the mask.
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_A = bytes.maketrans(_B64, b"A" * len(_B64))
_RUN_START = re.compile(rb"^A{40,998}={0,2}\r?\n(?:A{1,998}={0,2}\r?\n)*", re.MULTILINE)
_RUN_CONTINUE = re.compile(rb"(?:A{1,998}={0,2}\r?\n)*")
_FORTY = b"A" * 40


@dataclass(frozen=True)
class Segment:
    data: bytes
    inline: bool  # False: store as a chunk of its own


class Splitter:
    """Incremental splitter: ``feed`` blocks of any size, then ``finish``."""

    def __init__(self) -> None:
        self._carry = b""
        self._literal = bytearray()
        self._run: bytearray | None = None
        self._run_committed = False
        self._mid_line = False
        self._inline_total = 0
        self._out: list[Segment] = []

    def feed(self, block: bytes) -> list[Segment]:
        data = self._carry + block if self._carry else bytes(block)
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > _MAX_LINE:
            # A line this long is never part of a run: it is literal up to its end.
            self._close_run()
            self._add_literal(data)
            self._mid_line = True
            self._carry = b""
        else:
            self._carry = data[cut:]
            if cut:
                self._process(data[:cut] if cut < len(data) else data, final=False)
        return self._take()

    def finish(self) -> list[Segment]:
        tail, self._carry = self._carry, b""
        self._process(tail, final=True)
        self._close_run()
        self._end_literal()
        return self._take()

    def _take(self) -> list[Segment]:
        out, self._out = self._out, []
        return out

    def _process(self, region: bytes, *, final: bool) -> None:
        pos, end = 0, len(region)
        if self._mid_line:
            newline = region.find(b"\n")
            stop = end if newline < 0 else newline + 1
            self._add_literal(region[:stop])
            pos = stop
            self._mid_line = newline < 0
        masked = region.translate(_TO_A)
        if self._run is not None and pos < end:
            match = _RUN_CONTINUE.match(masked, pos)
            assert match is not None  # the pattern matches the empty string
            self._extend_run(region[pos : match.end()])
            pos = match.end()
            if pos == end and not final:
                return
            self._close_run()
        while pos < end:
            candidate = masked.find(_FORTY, pos)
            found = None
            if candidate >= 0:
                # The run can start no earlier than the line holding the first 40 in a row.
                line_start = max(pos, region.rfind(b"\n", pos, candidate) + 1)
                found = _RUN_START.search(masked, line_start)
            if found is None:
                self._add_literal(region[pos:])
                return
            self._add_literal(region[pos : found.start()])
            self._run = bytearray()
            self._run_committed = False
            self._extend_run(region[found.start() : found.end()])
            pos = found.end()
            if pos == end and not final:
                return
            self._close_run()

    def _extend_run(self, data: bytes) -> None:
        assert self._run is not None
        self._run += data
        if not self._run_committed and len(self._run) >= MIN_RUN:
            self._run_committed = True
            self._end_literal()
        if self._run_committed:
            while len(self._run) >= MAX_CHUNK:
                self._out.append(Segment(bytes(self._run[:MAX_CHUNK]), inline=False))
                del self._run[:MAX_CHUNK]

    def _close_run(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        if self._run_committed:
            if run:
                self._out.append(Segment(bytes(run), inline=False))
        else:
            self._add_literal(run)

    def _add_literal(self, data: bytes | bytearray) -> None:
        if not data:
            return
        self._literal += data
        while len(self._literal) >= MAX_CHUNK:
            self._out.append(Segment(bytes(self._literal[:MAX_CHUNK]), inline=False))
            del self._literal[:MAX_CHUNK]

    def _end_literal(self) -> None:
        if not self._literal:
            return
        data = bytes(self._literal)
        self._literal.clear()
        if len(data) > INLINE_MAX or self._inline_total + len(data) > INLINE_BUDGET:
            self._out.append(Segment(data, inline=False))
        else:
            self._inline_total += len(data)
            self._out.append(Segment(data, inline=True))


def split(raw: bytes) -> list[Segment]:
    """The segments of a message held in memory."""
    if len(raw) < MIN_RUN and len(raw) <= INLINE_MAX:  # no run fits: one inline literal
        return [Segment(raw, inline=True)] if raw else []
    return list(split_blocks([raw]))


def split_blocks(blocks: Iterable[bytes]) -> Iterator[Segment]:
    splitter = Splitter()
    for block in blocks:
        if block:
            yield from splitter.feed(block)
    yield from splitter.finish()
