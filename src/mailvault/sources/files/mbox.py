"""Streaming MBOX reader (classic ``From ``-separated files, pipermail text archives).

Separators: a line starting with ``From `` that carries a time (``hh:mm``) and a
four-digit year, as ctime-style envelope lines do (``From name at host  Tue Apr  1
00:06:38 2003`` in pipermail archives, ``From - Sat Jan 03 ...`` from Thunderbird). The
first line of the file is a separator whenever it starts with ``From ``. A body line like
"From the results above, 2003" without a time does not split a message.

Bytes are kept as they are: the ``From `` line is not part of the message, and the one
empty line a writer puts before the next ``From `` line is removed (as Python's
``mailbox`` does). ``>From `` quoting is undone only for the ``mboxrd`` variant, where it is
reversible; in the default ``mboxo`` variant (and pipermail archives) quoting is ambiguous,
so the bytes are left untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Literal

from .base import ImportEvent, ImportItem, ImportProblem

MboxVariant = Literal["mboxo", "mboxrd"]

_SEPARATOR = re.compile(rb"^From \S.*\b\d{1,2}:\d\d(?::\d\d)?\b.*\b\d{4}\b")
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_CHUNK = 1 << 20
_MAX_SEPARATOR = 2000  # a longer line is never a separator
DEFAULT_MAX_MESSAGE = 200 << 20


def is_separator(line: bytes) -> bool:
    return line.startswith(b"From ") and len(line) < _MAX_SEPARATOR and bool(_SEPARATOR.match(line))


def _from_line_starts(data: bytes, limit: int, mid_line: bool) -> Iterator[int]:
    """Offsets of ``From `` at line starts in ``data[:limit]`` (bytes.find runs in C)."""
    if not mid_line and limit >= 5 and data.startswith(b"From "):
        yield 0
    i = data.find(b"\nFrom ", 0, limit)
    while i >= 0:
        yield i + 1
        i = data.find(b"\nFrom ", i + 1, limit)


class _Message:
    """The message being collected: one bytearray, so a 50 MB message costs ~3x at most."""

    def __init__(self, start: int, max_message: int) -> None:
        self.start = start
        self.buf = bytearray()
        self.max_message = max_message
        self.oversize = False

    def add(self, data: bytes | memoryview) -> None:
        if self.oversize:
            return
        if len(self.buf) + len(data) > self.max_message:
            self.oversize = True
            self.buf = bytearray()
        else:
            self.buf += data

    def finish(self, unquote: bool) -> bytes:
        buf = self.buf
        if buf.endswith(b"\r\n\r\n"):
            del buf[-2:]  # the empty line a writer puts before the next From line
        elif buf.endswith(b"\n\n"):
            del buf[-1:]
        raw = bytes(buf)
        self.buf = bytearray()
        return _QUOTED_FROM.sub(rb"\1", raw) if unquote and b">" in raw else raw


def read_mbox(
    stream: IO[bytes],
    *,
    ref_prefix: str,
    folder_path: str,
    variant: MboxVariant = "mboxo",
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Iterator[ImportEvent]:
    """Yield the messages of an MBOX stream one at a time.

    The stream is scanned in 1 MiB chunks for ``From `` at line starts (C-speed search);
    only those candidate lines are checked in Python. ``source_ref`` is
    ``<ref_prefix>:<byte offset of the From line>``. A message bigger than
    ``max_message`` becomes an ImportProblem (its bytes are dropped, not held).
    """
    unquote = variant == "mboxrd"
    current: _Message | None = None
    leading = 0  # bytes before the first From line
    base = 0  # file offset of data[0]
    pending = b""  # unprocessed bytes, starting at a line start unless mid_line
    mid_line = False  # pending/data starts in the middle of a (very long) line
    last_byte = b"\n"

    def emit(msg: _Message, final: bool) -> Iterator[ImportEvent]:
        ref = f"{ref_prefix}:{msg.start}"
        if msg.oversize:
            yield ImportProblem(ref, f"message larger than {max_message} bytes, skipped")
            return
        raw = msg.finish(unquote)
        problem = None
        if final and last_byte != b"\n":
            problem = "truncated: the file ends in the middle of a line"
        elif final and b"\n\n" not in raw and b"\r\n\r\n" not in raw and b":" in raw:
            problem = "possibly truncated: the last message has no end of header"
        if not raw.strip():
            yield ImportProblem(ref, "empty message")
        else:
            yield ImportItem(folder_path=folder_path, raw=raw, source_ref=ref, problem=problem)

    while True:
        chunk = stream.read(_CHUNK)
        eof = not chunk
        if chunk:
            last_byte = chunk[-1:]
        data = pending + chunk if pending else chunk
        limit = len(data) if eof else data.rfind(b"\n") + 1
        if limit == 0 and len(data) > _MAX_SEPARATOR:
            limit = len(data)  # a huge line without newline: no separator can be in it
        view = memoryview(data)
        seg = 0  # start of the not yet stored bytes
        for i in _from_line_starts(data, limit, mid_line):
            nl = data.find(b"\n", i, limit)
            line_end = limit if nl < 0 else nl + 1
            if current is not None and not is_separator(data[i:line_end]):
                continue
            if current is None:
                leading += i - seg
                if leading:
                    yield ImportProblem(
                        f"{ref_prefix}:0", f"{leading} bytes before the first 'From ' line skipped"
                    )
                    leading = 0
            else:
                current.add(view[seg:i])
                yield from emit(current, final=False)
            current = _Message(base + i, max_message)
            seg = line_end
        if current is None:
            leading += limit - seg
        else:
            current.add(view[seg:limit])
        view.release()
        mid_line = limit > 0 and data[limit - 1 : limit] != b"\n"
        pending = data[limit:]
        base += limit
        if eof:
            break
    if current is not None:
        yield from emit(current, final=True)
    elif leading:
        yield ImportProblem(f"{ref_prefix}:0", "no 'From ' line: not an MBOX file")


def count_from_lines(stream: IO[bytes]) -> int:
    """Fast message count: a byte scan for ``From `` lines that look like separators."""
    count = 0
    carry = b""  # the unfinished last line of the previous chunk
    first = True
    while True:
        chunk = stream.read(_CHUNK)
        data = carry + chunk
        end = data.rfind(b"\n") + 1 if chunk else len(data)
        for i in _from_line_starts(data, end, False):
            nl = data.find(b"\n", i, end)
            # the first line of the file is a separator whatever follows "From "
            if (first and i == 0) or is_separator(data[i : end if nl < 0 else nl]):
                count += 1
        first = False
        carry = data[end:]
        if len(carry) > 65536:
            carry = b"x"  # only a line's start matters; this one is no From line
        if not chunk:
            return count
