"""Runs Mailvault's processes in the foreground and stops them all together.

``mailvault run`` starts one child process per service (web now; the SMTP listener, the
worker, the scheduler and the Microsoft 365 emulator join as they are built). Ctrl-C or
SIGTERM stops every child cleanly; if one child dies, the others are stopped too and the
exit code says so, instead of leaving half a system running.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType


@dataclass(frozen=True)
class Service:
    name: str
    argv: Sequence[str]


def die_with_parent() -> None:
    """For ``preexec_fn``: on Linux the child gets SIGTERM when the process that started it
    dies, so no orphan keeps working (or keeps a port) after a crash of its parent."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        pass


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Supervisor:
    def __init__(self, services: Sequence[Service], *, grace_seconds: float = 10.0) -> None:
        self.services = services
        self.grace_seconds = grace_seconds
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for service in self.services:
                self.children[service.name] = subprocess.Popen(list(service.argv))  # noqa: S603 - our own argv
                print(
                    f"[mailvault] started {service.name} (pid {self.children[service.name].pid})",
                    flush=True,
                )
            exit_code = 0
            while not self._stopping:
                for name, child in self.children.items():
                    code = child.poll()
                    if code is not None:
                        print(
                            f"[mailvault] {name} exited with {code}; stopping the rest", flush=True
                        )
                        exit_code = code or 1
                        self._stopping = True
                        break
                time.sleep(0.2)
            self._stop_all()
            print("[mailvault] stopped", flush=True)
            return exit_code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for child in self.children.values():
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
