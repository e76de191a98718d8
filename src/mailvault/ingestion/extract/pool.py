"""A small pool of persistent worker processes that run the heavy extractors.

Each worker is forked once and reused. It runs under an address-space limit
(``RLIMIT_AS``); the parent enforces the time limit by killing a worker that has not
answered in time, and replaces any worker that timed out, crashed or ran out of memory.
Nothing a hostile attachment does in a worker can hang or exhaust the caller.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from mailvault.ingestion.extract import formats
from mailvault.ingestion.extract.detect import HTML, TEXT
from mailvault.ingestion.extract.text import extract_plain
from mailvault.ingestion.extract.types import (
    Handler,
    Limits,
    MiB,
    Refused,
    TextSink,
    truncated_problem,
)

log = logging.getLogger(__name__)

_EXIT_NO_MEMORY = 3

# (text, problem, kind, recycle): recycle asks the parent to replace the worker.
Reply = tuple[str, str | None, str, bool]


def _label(kind: str, hint: str = "") -> str:
    """ "DOCX", "PDF", ...: for a ZIP the declared office format, if any, reads better."""
    if kind == "zip" and hint:
        kind = hint
    return kind.removeprefix("custom:").upper() if kind else "attachment"


def _set_memory_limit(extra: int) -> None:
    """Cap the address space at what the fork inherited plus ``extra`` bytes."""
    try:
        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        current = 0
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _serve_one(
    kind: str, hint: str, data: bytes, limits: Limits, handlers: Mapping[str, Handler]
) -> Reply:
    if kind in (TEXT, HTML):  # too big to be done in the caller; hint is the charset
        plain = extract_plain(kind, data, hint, limits)
        return plain.text, plain.problem, kind, False
    sink = TextSink(limits.max_text_chars, kind)
    try:
        if kind.startswith("custom:"):
            handlers[kind.removeprefix("custom:")](data, sink)
        else:
            formats.run(hint, data, limits, sink)
    except Refused as exc:
        return "", str(exc), sink.kind, False
    except MemoryError:
        limit = limits.memory_bytes // MiB
        return "", f"{_label(sink.kind)}: out of memory (limit {limit} MiB)", sink.kind, True
    except RecursionError:
        return "", f"{_label(sink.kind)}: structure nested too deeply", sink.kind, True
    except (Exception, SystemExit) as exc:  # a library failing on a bad file
        detail = f"{type(exc).__name__}: {exc}"[:200]
        return "", f"{_label(sink.kind)}: corrupt or unreadable ({detail})", sink.kind, False
    problem = truncated_problem(sink.limit) if sink.truncated else None
    return sink.text(), problem, sink.kind, False


def _worker_main(
    conn: Connection,
    inherited: list[Connection],
    limits: Limits,
    handlers: Mapping[str, Handler],
) -> None:
    """Loop of a worker: receive (kind, hint) then the bytes, answer a Reply."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    faulthandler.disable()  # a crash is reported by the parent, not dumped on its stderr
    for other in inherited:  # pipe ends of the parent and of the other workers
        with contextlib.suppress(OSError):
            other.close()
    logging.disable(logging.CRITICAL)  # libraries warn loudly about every odd file
    warnings.simplefilter("ignore")
    _set_memory_limit(limits.memory_bytes)
    with contextlib.suppress(Exception):
        formats.prewarm()
    while True:
        try:
            header = conn.recv()
            if header is None:
                return
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the parent went away
            return
        except MemoryError:  # the stream is out of step now: leave, the parent replaces us
            sys.exit(_EXIT_NO_MEMORY)
        kind, hint = header
        reply = _serve_one(kind, hint, data, limits, handlers)
        del data
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
        if reply[3]:
            return


class _Worker:
    def __init__(
        self,
        limits: Limits,
        handlers: Mapping[str, Handler],
        inherited: list[Connection],
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(
            target=_worker_main,
            args=(child_conn, [*inherited, self.conn], limits, handlers),
            name="mailvault-extract",
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        self.tasks = 0
        self.stopped = False

    def stop(self, graceful: bool) -> None:
        """Stop and reap the process (no zombie is left behind); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if graceful:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(None)
            self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()

    def exit_description(self) -> str:
        if self.stopped:
            return "stopped"
        self.process.join(timeout=2)
        code = self.process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        if code == _EXIT_NO_MEMORY:
            return "out of memory receiving the attachment"
        return f"exited with status {code}"


def _shutdown(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.stop(graceful=True)
    workers.clear()


class WorkerPool:
    """Persistent worker processes; thread-safe; started lazily on first use."""

    def __init__(
        self, size: int, limits: Limits, handlers: Mapping[str, Handler] | None = None
    ) -> None:
        self.size = max(1, size)
        self.limits = limits
        self.handlers = dict(handlers or {})
        self._cond = threading.Condition()
        self._idle: deque[_Worker] = deque()
        self._all: set[_Worker] = set()
        self._closed = False
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _shutdown, self._all)

    # -- worker bookkeeping (callers hold self._cond) --

    def _spawn(self) -> _Worker:
        worker = _Worker(self.limits, self.handlers, [w.conn for w in self._all])
        self._all.add(worker)
        return worker

    def _acquire(self, block: bool) -> _Worker | None:
        with self._cond:
            if self._closed:
                raise RuntimeError("extractor is closed")
            if self._pid != os.getpid():  # we were forked: those workers are not ours
                self._idle.clear()
                self._all.clear()
                self._pid = os.getpid()
            while True:
                if self._idle:
                    return self._idle.popleft()
                if len(self._all) < self.size:
                    return self._spawn()
                if not block:
                    return None
                self._cond.wait()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        recycle = not healthy or worker.tasks >= self.limits.max_tasks_per_worker
        if recycle:
            worker.stop(graceful=healthy)
        with self._cond:
            if recycle or self._closed:
                self._all.discard(worker)
            else:
                self._idle.append(worker)
            self._cond.notify()
        if not recycle and self._closed:
            worker.stop(graceful=True)

    def start(self) -> None:
        """Fork every worker now rather than on first use."""
        with self._cond:
            if self._closed:
                raise RuntimeError("extractor is closed")
            while len(self._all) < self.size:
                self._idle.append(self._spawn())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            for worker in idle:
                self._all.discard(worker)
            self._cond.notify_all()
        for worker in idle:
            worker.stop(graceful=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def pids(self) -> list[int]:
        with self._cond:
            return [w.process.pid for w in self._all if w.process.pid is not None]

    # -- running jobs --

    def run(self, jobs: list[tuple[str, str, bytes]], timeout_s: float) -> list[Reply]:
        """Run (kind, hint, data) jobs on as many workers as are free; one reply per job."""
        replies: list[Reply | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        in_flight: dict[Connection, tuple[_Worker, int, float]] = {}
        retried: set[int] = set()
        try:
            while pending or in_flight:
                while pending:
                    worker = self._acquire(block=not in_flight)
                    if worker is None:
                        break
                    index = pending.popleft()
                    kind, hint, data = jobs[index]
                    if self._send(worker, kind, hint, data):
                        in_flight[worker.conn] = (worker, index, time.monotonic() + timeout_s)
                    else:  # it died while idle or reading: retry once on a fresh worker
                        how = worker.exit_description()
                        self._release(worker, healthy=False)
                        if index in retried:
                            problem = f"{_label(kind, hint)}: extractor crashed ({how})"
                            replies[index] = ("", problem, kind, True)
                        else:
                            retried.add(index)
                            pending.appendleft(index)
                if not in_flight:
                    continue
                deadline = min(d for _, _, d in in_flight.values())
                ready = wait(list(in_flight), timeout=max(0.0, deadline - time.monotonic()))
                for conn in ready:
                    assert isinstance(conn, Connection)
                    worker, index, _ = in_flight.pop(conn)
                    replies[index] = self._receive(worker, *jobs[index][:2])
                now = time.monotonic()
                for conn, (worker, index, deadline) in list(in_flight.items()):
                    if now >= deadline:
                        del in_flight[conn]
                        self._release(worker, healthy=False)
                        kind, hint, _ = jobs[index]
                        replies[index] = (
                            "",
                            f"{_label(kind, hint)}: timed out after {timeout_s:g} s",
                            kind,
                            True,
                        )
        finally:  # an exception here (KeyboardInterrupt...) must not leak busy workers
            for worker, _, _ in in_flight.values():
                self._release(worker, healthy=False)
        return [r if r is not None else ("", "not extracted", "", False) for r in replies]

    def _send(self, worker: _Worker, kind: str, hint: str, data: bytes) -> bool:
        try:
            worker.conn.send((kind, hint))
            worker.conn.send_bytes(data)
        except (OSError, ValueError):
            return False
        worker.tasks += 1
        return True

    def _receive(self, worker: _Worker, kind: str, hint: str) -> Reply:
        try:
            reply: Any = worker.conn.recv()
        except (EOFError, OSError) as exc:
            how = worker.exit_description()
            self._release(worker, healthy=False)
            log.warning("attachment extractor worker died (%s): %s", how, exc)
            return "", f"{_label(kind, hint)}: extractor crashed ({how})", kind, True
        self._release(worker, healthy=not reply[3])
        return (str(reply[0]), reply[1], str(reply[2]), bool(reply[3]))
