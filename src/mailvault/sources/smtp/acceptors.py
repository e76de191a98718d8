"""More listener processes on the same SMTP port, one event loop per core.

One Python process tops out at one core, and the listener's work per message (the SMTP
dialogue, DATA, the spool write) is CPU-bound. ``mailvault smtpd`` therefore starts
``MAILVAULT_SMTP_PROCESSES - 1`` copies of itself with ``--acceptor``: each binds
the same port with ``SO_REUSEPORT`` (the kernel spreads connections), spools into its own
segment files and ingests nothing — the first process runs the consumer. A copy dies with
the process that started it (``supervisor.die_with_parent``); one that exits on its own is
restarted.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

from mailvault.supervisor import die_with_parent

log = logging.getLogger("mailvault.smtp")


class AcceptorPool:
    """Starts, watches and stops the extra listener processes."""

    def __init__(self, count: int, host: str, port: int) -> None:
        self.count = count
        self.host = host
        self.port = port
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="smtp-acceptors", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-c",
            "from mailvault.cli import main; main()",
            "smtpd",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--acceptor",
        ]
        return subprocess.Popen(command, preexec_fn=die_with_parent)  # noqa: S603 - our argv

    def start(self) -> None:
        self._procs = [self._spawn() for _ in range(self.count)]
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, proc in enumerate(self._procs):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.warning(
                        "SMTP acceptor %s exited (%s); restarting", proc.pid, proc.returncode
                    )
                    time.sleep(0.5)
                    self._procs[index] = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
