"""Index text of attachments: PDF, DOCX, XLSX, PPTX, ODT/ODS/ODP, RTF, plain text, HTML.

Limits per attachment (see :class:`Limits`): input size (bigger is skipped), output
text (truncated), time (the worker is killed) and memory (``RLIMIT_AS`` in the worker).
Small plain text and HTML are decoded in the calling process; bigger ones and the other
formats run in a pool of persistent forked worker processes, so a hostile file (zip
bomb, pathological PDF, endless loop) costs at most one worker, which is replaced.
Nothing here raises to the caller: every failure is an ``ExtractResult`` with empty
text and a ``problem``.

Bulk use::

    with Extractor() as extractor:
        for name, content_type, data in attachments:
            result = extractor.extract(name, content_type, data)

or ``extractor.extract_many(items)`` to keep every worker busy. One-off use:
:func:`extract_text` runs on a process-wide pool started on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType

from mailvault.ingestion.extract.detect import HTML, TEXT, Detected, detect
from mailvault.ingestion.extract.pool import WorkerPool
from mailvault.ingestion.extract.text import extract_plain, html_to_text
from mailvault.ingestion.extract.types import (
    ExtractResult,
    Handler,
    Limits,
    MiB,
    TextSink,
)

__all__ = [
    "ExtractResult",
    "Extractor",
    "Handler",
    "Limits",
    "TextSink",
    "extract_text",
    "html_to_text",
]

log = logging.getLogger(__name__)

Item = tuple[str, str, bytes]  # (filename, content type, bytes)


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


class Extractor:
    """Extracts attachment text through a reusable pool of worker processes.

    ``workers``: pool size (default: 2, or 1 on a single core). ``handlers`` maps extra
    content types to extractors run in the pool like the built-in ones (tests use it to
    register misbehaving formats). Workers start on the first attachment that needs
    them; :meth:`close` (or leaving the ``with`` block) stops and reaps them.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        limits: Limits | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        size = workers if workers is not None else min(2, os.cpu_count() or 1)
        self._handlers = {key.lower(): value for key, value in (handlers or {}).items()}
        self._custom_types = frozenset(self._handlers)
        self._pool = WorkerPool(size, self.limits, self._handlers)

    def __enter__(self) -> Extractor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Extractor:
        """Fork the workers now. Worth calling early in a bulk importer, before it starts
        threads or opens large mappings, so that the forks are small and clean."""
        self._pool.start()
        return self

    def close(self) -> None:
        self._pool.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return self._pool.pids()

    def extract(
        self, filename: str, content_type: str, data: bytes, *, timeout_s: float | None = None
    ) -> ExtractResult:
        return self.extract_many([(filename, content_type, data)], timeout_s=timeout_s)[0]

    def extract_many(
        self, items: Iterable[Item], *, timeout_s: float | None = None
    ) -> list[ExtractResult]:
        """One result per item, in order; the heavy ones run in parallel on the pool."""
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        results: list[ExtractResult | None] = []
        jobs: list[tuple[str, str, bytes]] = []
        job_slots: list[int] = []
        for filename, content_type, data in items:
            immediate, job = self._prepare(filename, content_type, data)
            if job is not None:
                job_slots.append(len(results))
                jobs.append(job)
            results.append(immediate)
        if jobs:
            for slot, result in zip(job_slots, self._run(jobs, timeout), strict=True):
                results[slot] = result
        return [r if r is not None else ExtractResult("", "not extracted") for r in results]

    def _prepare(
        self, filename: str, content_type: str, data: bytes
    ) -> tuple[ExtractResult | None, tuple[str, str, bytes] | None]:
        """Either the result right away, or a (kind, hint, data) job for the pool."""
        try:
            if len(data) > self.limits.max_input_bytes:
                return ExtractResult(
                    "",
                    f"too large ({_size(len(data))}, limit {_size(self.limits.max_input_bytes)})",
                ), None
            if not data:
                return ExtractResult("", None), None
            found: Detected = detect(filename, content_type, data, self._custom_types)
            if found.refusal:
                return ExtractResult("", found.refusal, found.hint or found.kind or ""), None
            if found.kind is None:
                return ExtractResult("", f"unsupported format ({found.label})"), None
            if found.kind in (TEXT, HTML):
                if len(data) <= self.limits.inline_max_bytes:  # the fast path
                    return extract_plain(found.kind, data, found.charset, self.limits), None
                return None, (found.kind, found.charset, data)
            return None, (found.kind, found.hint, data)
        except Exception as exc:  # never raise to the caller
            log.exception("attachment detection failed for %r", filename)
            return ExtractResult("", f"extraction failed ({type(exc).__name__}: {exc})"), None

    def _run(self, jobs: list[tuple[str, str, bytes]], timeout: float) -> list[ExtractResult]:
        try:
            replies = self._pool.run(jobs, timeout)
        except Exception as exc:  # e.g. fork failed, or the extractor was closed
            log.exception("attachment extractor pool failed")
            problem = f"extraction failed ({type(exc).__name__}: {exc})"
            return [ExtractResult("", problem, kind) for kind, _, _ in jobs]
        return [ExtractResult(text, problem, kind) for text, problem, kind, _ in replies]


_default: Extractor | None = None
_default_pid = 0
_default_lock = threading.Lock()


def default_extractor() -> Extractor:
    """The process-wide extractor behind :func:`extract_text`, started on first use."""
    global _default, _default_pid
    with _default_lock:
        if _default is None or _default_pid != os.getpid():
            _default = Extractor()
            _default_pid = os.getpid()
            atexit.register(_default.close)
        return _default


def close_default_extractor() -> None:
    global _default
    with _default_lock:
        if _default is not None and _default_pid == os.getpid():
            _default.close()
        _default = None


def extract_text(filename: str, content_type: str, data: bytes) -> ExtractResult:
    """Index text of one attachment with the default limits; never raises."""
    return default_extractor().extract(filename, content_type, data)
