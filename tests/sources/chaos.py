"""The journaling chaos run, shared by the test (small N) and bench/smtp_journal.py.

A sender with several parallel SMTP sessions delivers N distinct journal reports and
records every message that got its ``250`` (a real MTA retries on 4xx and on a dropped
connection, and so does this one); ``smtp-source`` adds load beside it; meanwhile the
listener and the consumer processes are SIGKILLed and restarted. Afterwards every
acknowledged message must be in the archive exactly once per mailbox.
"""

from __future__ import annotations

import contextlib
import queue
import random
import smtplib
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .smtp_servers import SMTP_SOURCE, Installation, Process, Smtpd

EXPECTED_MAILBOXES = ["alice@contoso.com", "bob@contoso.com", "journal@contoso"]


def chaos_report(to: str, number: int, padding: int = 0) -> tuple[str, bytes]:
    """A journal report (Exchange Online's form) carrying one unique original."""
    mid = f"<chaos-{number}@contoso.com>"
    original = (
        f"From: Alice <alice@contoso.com>\r\nTo: bob@contoso.com\r\nSubject: chaos {number}\r\n"
        f"Message-ID: {mid}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n"
        f"Message number {number}.\r\n" + "x" * padding + "\r\n"
    ).encode()
    envelope = (
        f"Sender: alice@contoso.com\r\nSubject: chaos {number}\r\nMessage-ID: {mid}\r\n"
        "To: bob@contoso.com\r\n"
    )
    report = (
        (
            f"From: journal@contoso.com\r\nTo: {to}\r\nSubject: chaos {number}\r\n"
            "X-MS-Journal-Report:\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="jr"\r\n\r\n--jr\r\n'
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + envelope + "--jr\r\n"
            "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ).encode()
        + original
        + b"\r\n--jr--\r\n"
    )
    return mid, report


@dataclass
class Sender:
    """N reports over ``sessions`` parallel connections; ``acked`` holds every
    Message-ID that got a 250."""

    port: int
    to: str
    count: int
    sessions: int = 8
    padding: int = 0
    acked: set[str] = field(default_factory=set)
    attempts: int = 0
    temporary_failures: int = 0
    permanent_failures: list[str] = field(default_factory=list)

    def run(self, deadline: float) -> None:
        work: queue.Queue[int] = queue.Queue()
        for number in range(self.count):
            work.put(number)
        lock = threading.Lock()

        def session() -> None:
            smtp: smtplib.SMTP | None = None
            while time.monotonic() < deadline:
                try:
                    number = work.get_nowait()
                except queue.Empty:
                    break
                mid, data = chaos_report(self.to, number, self.padding)
                while time.monotonic() < deadline:
                    with lock:
                        self.attempts += 1
                    try:
                        if smtp is None:
                            smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
                        smtp.sendmail("journal@contoso.com", [self.to], data)
                        with lock:
                            self.acked.add(mid)
                        break
                    except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
                        code = getattr(exc, "smtp_code", 0) or _first_code(exc)
                        if code >= 500:
                            with lock:
                                self.permanent_failures.append(f"{mid}: {exc}")
                            break
                        with lock:
                            self.temporary_failures += 1
                        _drop(smtp)
                        smtp = None
                        time.sleep(0.2)
                    except (OSError, smtplib.SMTPException):
                        # Refused, reset or closed: the listener is down; retry later.
                        with lock:
                            self.temporary_failures += 1
                        _drop(smtp)
                        smtp = None
                        time.sleep(0.2)
            _drop(smtp)

        threads = [threading.Thread(target=session) for _ in range(self.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _first_code(exc: smtplib.SMTPException) -> int:
    codes = [code for code, _ in getattr(exc, "recipients", {}).values()]
    return int(codes[0]) if codes else 0


def _drop(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


class Load:
    """smtp-source (Postfix's load generator) sending plain copies beside the sender,
    started again whenever a killed listener made it give up."""

    def __init__(self, port: int, to: str, sessions: int = 2, size: int = 2000) -> None:
        self.args = [
            SMTP_SOURCE, "-A", "-d", "-s", str(sessions), "-m", "200", "-l", str(size),
            "-M", "load.contoso.test", "-f", "load@contoso.com", "-t", to,
            f"127.0.0.1:{port}",
        ]  # fmt: skip
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.runs += 1
            self._proc = subprocess.Popen(
                self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self._proc.wait()
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._thread.join(timeout=10)


@dataclass
class ChaosResult:
    acked: int
    archived_ok: int
    missing: list[str]
    wrong: dict[str, list[str]]
    listener_kills: int
    consumer_kills: int
    load_runs: int
    temporary_failures: int
    send_seconds: float
    drain_seconds: float


def kill_loop(
    stop: threading.Event,
    listener: Smtpd,
    consumers: list[Process],
    kills: Counter[str],
    interval: tuple[float, float],
) -> None:
    """SIGKILL the listener or a consumer at random moments and start it again."""
    rng = random.Random(5)
    turn = 0
    while not stop.wait(rng.uniform(*interval)):
        turn += 1
        if turn % 2:
            listener.kill()
            kills["listener"] += 1
            listener.start()
        else:
            victim = consumers[turn // 2 % len(consumers)]
            victim.kill()
            kills["consumer"] += 1
            victim.start()


def archive_state(installation: Installation) -> dict[str, list[str]]:
    """Message-ID → the mailboxes of its placements (one entry per placement), for every
    chaos message; plus a marker entry for a Message-ID stored as two messages."""
    rows = installation.query(
        "SELECT m.message_id, m.id, b.primary_address FROM archive_message m "
        "JOIN archive_placement p ON p.message_id = m.id "
        "JOIN archive_mailbox b ON b.id = p.mailbox_id WHERE m.message_id LIKE '<chaos-%'"
    )
    state: dict[str, list[str]] = {}
    ids: dict[str, set[object]] = {}
    for message_id, pk, mailbox in rows:
        state.setdefault(str(message_id), []).append(str(mailbox))
        ids.setdefault(str(message_id), set()).add(pk)
    for message_id, pks in ids.items():
        if len(pks) > 1:
            state[message_id].append(f"(stored as {len(pks)} messages)")
    return {k: sorted(v) for k, v in state.items()}


def run_chaos(
    installation: Installation,
    *,
    count: int,
    sessions: int = 8,
    consumers: int = 2,
    kill_interval: tuple[float, float] = (2.0, 4.0),
    padding: int = 0,
    load: bool = True,
    send_timeout: float = 600,
    drain_timeout: float = 300,
    min_kills: int = 0,
) -> ChaosResult:
    """``min_kills``: go on killing (also while the spool drains) until the listener
    and the consumers were each killed this often."""
    address = installation.addresses["open"]
    listener = Smtpd(installation, "--no-consumer").start()
    workers = [
        Process(installation, f"consumer{i}", "smtpd", "--no-listener").start()
        for i in range(consumers)
    ]
    generator = Load(listener.port, address) if load else None
    kills: Counter[str] = Counter()
    stop = threading.Event()
    killer = threading.Thread(
        target=kill_loop, args=(stop, listener, workers, kills, kill_interval), daemon=True
    )
    sender = Sender(listener.port, address, count, sessions=sessions, padding=padding)
    try:
        if generator is not None:
            generator.start()
        killer.start()
        started = time.monotonic()
        sender.run(deadline=started + send_timeout)
        send_seconds = time.monotonic() - started
        enough = time.monotonic() + 120
        while time.monotonic() < enough and min(kills["listener"], kills["consumer"]) < min_kills:
            time.sleep(0.2)
        stop.set()
        killer.join(timeout=120)
        if generator is not None:
            generator.stop()
        # Everything up again; wait for the spool to drain into the archive.
        if not listener.alive:
            listener.start()
        for worker in workers:
            if not worker.alive:
                worker.start()
        drained = time.monotonic()
        deadline = drained + drain_timeout
        state = archive_state(installation)
        while time.monotonic() < deadline:
            state = archive_state(installation)
            if all(state.get(mid) == EXPECTED_MAILBOXES for mid in sender.acked):
                break
            time.sleep(0.5)
        drain_seconds = time.monotonic() - drained
    finally:
        stop.set()
        if generator is not None:
            generator.stop()
        listener.stop()
        for worker in workers:
            worker.stop()
    missing = sorted(mid for mid in sender.acked if mid not in state)
    wrong = {
        mid: boxes
        for mid, boxes in state.items()
        if boxes != EXPECTED_MAILBOXES and mid in sender.acked
    }
    return ChaosResult(
        acked=len(sender.acked),
        archived_ok=sum(1 for mid in sender.acked if state.get(mid) == EXPECTED_MAILBOXES),
        missing=missing,
        wrong=wrong,
        listener_kills=kills["listener"],
        consumer_kills=kills["consumer"],
        load_runs=generator.runs if generator is not None else 0,
        temporary_failures=sender.temporary_failures,
        send_seconds=send_seconds,
        drain_seconds=drain_seconds,
    )
