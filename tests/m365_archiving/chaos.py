"""Real processes for the Microsoft 365 chaos test: a private Mailvault installation (its
own var folder with a SQLite file database, store, index and master key), the driver
process that configures it and queues runs (``chaos_driver.py``), ``mailvault worker``
and ``mailvault scheduler`` as subprocesses that can be SIGKILLed, and the fault
switches the test throws at the emulator while they run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from m365_emulator.testing import EmulatorHandle
from sources.smtp_servers import Process as MailvaultProcess

MAILVAULT = str(Path(sys.executable).with_name("mailvault"))
DRIVER = str(Path(__file__).with_name("chaos_driver.py"))


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Installation:
    """A migrated, empty installation in ``root`` that talks to the emulator."""

    def __init__(self, root: Path, m365: EmulatorHandle) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MAILVAULT_")
            and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
        }
        # Every process of the installation writes its threads' stacks to its log on
        # SIGUSR1 (what a stuck run was doing, when a wait times out).
        hooks = root / "pyhooks"
        hooks.mkdir(exist_ok=True)
        (hooks / "sitecustomize.py").write_text(
            "import faulthandler, signal\nfaulthandler.register(signal.SIGUSR1, all_threads=True)\n"
        )
        path = os.pathsep.join(p for p in (str(hooks), env.get("PYTHONPATH", "")) if p)
        self.env = env | {
            "PYTHONPATH": path,
            "MAILVAULT_VAR_DIR": str(root),
            "DJANGO_SETTINGS_MODULE": "mailvault.settings",
            "MAILVAULT_LOG_LEVEL": "WARNING",
            "MAILVAULT_M365_AUTHORITY_BASE": m365.base_url,
            "MAILVAULT_M365_GRAPH_BASE": m365.graph_base,
            "MAILVAULT_M365_CLIENT_ID": m365.client_id,
            "MAILVAULT_M365_CLIENT_SECRET": m365.client_secret,
            "MAILVAULT_M365_CA_BUNDLE": str(m365.ca_path),
            "MAILVAULT_M365_MAX_RETRIES": "10",
            # A killed worker's run counts as lost after 3 s without a heartbeat.
            "MAILVAULT_JOB_HEARTBEAT_SECONDS": "1",
            "MAILVAULT_JOB_LOST_AFTER_SECONDS": "3",
        }
        migrated = subprocess.run(
            [MAILVAULT, "migrate", "-v0"], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert migrated.returncode == 0, migrated.stderr

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the SQLite file (WAL: beside the writers, committed rows only). Not
        read-only: after a writer was SIGKILLed, the first reader may have to recover
        the WAL index, which a read-only connection cannot do."""
        with closing(sqlite3.connect(self.root / "mailvault.sqlite3", timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def placements(self) -> list[tuple[int, str, str]]:
        """(mailbox id, folder path, SHA-256) of every placement."""
        return [
            (int(r[0]), str(r[1]), str(r[2]))
            for r in self.query(
                "SELECT p.mailbox_id, f.path, m.sha256 FROM archive_placement p "
                "JOIN archive_message m ON m.id = p.message_id "
                "JOIN archive_folder f ON f.id = p.folder_id"
            )
        ]

    def placed_in(self, mailbox_id: int, sha256: str) -> int:
        rows = self.query(
            "SELECT count(*) FROM archive_placement p JOIN archive_message m "
            "ON m.id = p.message_id WHERE p.mailbox_id = ? AND m.sha256 = ?",
            mailbox_id,
            sha256,
        )
        return int(rows[0][0])


class Driver:
    """``chaos_driver.py`` in the installation: one JSON command, one JSON answer."""

    def __init__(self, installation: Installation) -> None:
        self.log = open(installation.root / "driver.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, DRIVER],
            env=installation.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lock = threading.Lock()

    def __call__(self, cmd: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        assert line, f"the chaos driver ended (exit {self.proc.poll()})"
        answer = json.loads(line)
        assert answer["ok"], answer["error"]
        return answer["result"]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


class Process(MailvaultProcess):
    """A ``mailvault`` command in its own session (SIGKILL takes its children too), whose
    threads' stacks can be written to its log."""

    def dump_stacks(self) -> None:
        """Every thread's stack into the log (SIGUSR1, see Installation)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.5)


class Chaos(threading.Thread):
    """Flips the emulator's fault switches while the runs go on: 429s with a Retry-After,
    503s, dropped connections, and every few seconds every access token expired or every
    delta link answered 410. Counts what it did."""

    def __init__(self, m365: EmulatorHandle, seed: int = 7) -> None:
        super().__init__(name="m365-chaos", daemon=True)
        self.m365 = m365
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.done: Counter[str] = Counter()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
        self.m365.set_faults(
            throttle_next=0, unavailable_next=0, drop_next=0, delta_reset=False, slow_ms=0
        )

    def run(self) -> None:
        # Faults follow the traffic, one every 8 to 20 Graph requests ($batch
        # sub-requests count): every run meets many, but no request meets more of them in
        # a row than a client retries (a fault per unit of time would hit a lone client
        # that backs off every time).
        # Expired tokens and 410s come every few seconds.
        last = self._requests()
        gap = self.rng.randint(8, 20)
        token_at = time.monotonic() + 4.0
        reset_at = time.monotonic() + 6.0
        while not self.stop_event.wait(0.1):
            now = time.monotonic()
            if now > reset_at:
                self.m365.reset_delta()  # every delta link issued so far: 410 Gone
                self.done["410"] += 1
                reset_at = now + self.rng.uniform(5.0, 8.0)
            if now > token_at:
                self.m365.expire_tokens()  # every access token: 401, renewed by the client
                self.done["token"] += 1
                token_at = now + self.rng.uniform(3.0, 6.0)
            requests = self._requests()
            if requests - last < gap:
                continue
            last, gap = requests, self.rng.randint(8, 20)
            choice = self.rng.choice(("429", "503", "drop"))
            if choice == "429":
                self.m365.set_faults(throttle_next=1)
            elif choice == "503":
                self.m365.set_faults(unavailable_next=1)
            else:
                self.m365.set_faults(drop_next=1)
            self.done[choice] += 1

    def _requests(self) -> int:
        """Graph requests so far (read in-process: polling the control API over TLS ten
        times a second would cost more than the runs)."""
        assert self.m365.emulator is not None
        return int(self.m365.emulator.throttle.stats["requests"])
