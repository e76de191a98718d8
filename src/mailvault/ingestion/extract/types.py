"""Result, limits and the text collector shared by the parent and the worker processes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class ExtractResult:
    """Index text of one attachment.

    ``problem`` is None when all went well; otherwise it says why ``text`` is empty (or,
    for "text truncated ...", why it is shorter than the document). ``kind`` is the format
    that was recognised ("pdf", "docx", ..., "text", "html") or "" when none was.
    """

    text: str
    problem: str | None = None
    kind: str = ""


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = 20 * MiB
    max_text_chars: int = MiB
    # Text and HTML up to this size are decoded in the calling process; bigger ones (HTML
    # cleaning runs at about 1-4 MB/s) go to the workers, under the time limit.
    inline_max_bytes: int = 512 * 1024
    timeout_s: float = 10.0
    # Address space a worker may add on top of what it inherited at fork time.
    memory_bytes: int = 1024 * MiB
    # Zip-based formats (DOCX, XLSX, PPTX, ODF) are opened only below these bounds.
    zip_max_unpacked_bytes: int = 256 * MiB
    zip_max_members: int = 10_000
    # Deflate tops out near 1000:1 (a bomb); real XML parts stay well under this.
    zip_max_ratio: int = 250  # for members larger than 1 MiB unpacked
    # A worker is replaced after this many attachments, bounding leaks and fragmentation.
    max_tasks_per_worker: int = 500


class Refused(Exception):
    """Raised inside an extractor with a message that becomes ``ExtractResult.problem``."""


_INLINE_WS = re.compile(r"[ \t\f\v\r\xa0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class TextSink:
    """Collects text up to ``limit`` characters; extractors stop once ``add`` says False."""

    def __init__(self, limit: int, kind: str = "") -> None:
        self.limit = limit
        self.kind = kind  # the format being read, refined once a ZIP has been looked into
        self.size = 0
        self.truncated = False
        self._parts: list[str] = []

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def add(self, text: str | None) -> bool:
        """Append a chunk (a paragraph, a row, a page). Returns False when no room is left."""
        if self.full:
            self.truncated = True
            return False
        if not text:
            return True
        text = _BLANK_LINES.sub("\n\n", _INLINE_WS.sub(" ", text)).strip()
        if not text:
            return True
        room = self.limit - self.size
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self._parts.append(text)
        self.size += len(text) + 1
        return not self.full

    def text(self) -> str:
        return "\n".join(self._parts)[: self.limit]


# A format extractor: reads ``data`` and feeds ``sink``; raises Refused or anything else
# on failure (the caller turns both into a problem).
Handler = Callable[[bytes, TextSink], None]


def truncated_problem(limit: int) -> str:
    return f"text truncated at {limit} characters"
