"""Journaling throughput: accepted rate and end-to-end rate until searchable.

    .venv/bin/python bench/smtp_journal.py [--count 10000] [--size 102400] [--sessions 20]
    .venv/bin/python bench/smtp_journal.py --enron [--count 10000] [--sessions 20]
    .venv/bin/python bench/smtp_journal.py --chaos [--count 10000]

A private installation (SQLite file database, store, index and spool in a temp folder)
runs ``mailvault smtpd --no-consumer`` (the listener, ``--listener-processes`` processes
on one port) and ``--consumers`` processes of ``mailvault smtpd --no-listener``
(ingestion), as real subprocesses.

- default: Postfix's ``smtp-source`` sends ``--count`` messages of ``--size`` bytes in
  ``--sessions`` parallel sessions (plain copies: archived into the journal mailbox).
- ``--enron``: journal reports built from the Enron corpus (each real message attached
  to an Exchange Online envelope naming its From/To/Cc), sent by a Python sender with
  ``--sessions`` parallel sessions (smtp-source can only repeat one file).
- ``--chaos``: the chaos run of issue 5 (SIGKILL listener and consumers while mail flows;
  every acknowledged message archived exactly once per mailbox), with its counts.

Printed: the accepted rate (messages acknowledged with 250 per second, until the last
250) and, beside it, the end-to-end rate (from the first message sent until the last one
is searchable: ``Message.indexed``, i.e. committed to the search index).
"""

from __future__ import annotations

import argparse
import email.utils
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the end-to-end harness lives with the tests

from corpus import iter_files, message_root  # noqa: E402
from sources.chaos import run_chaos  # noqa: E402
from sources.smtp_servers import (  # noqa: E402
    SMTP_SOURCE,
    Installation,
    Process,
    Smtpd,
    build_installation,
)


def wait_searchable(installation: Installation, like: str, count: int, timeout: float) -> float:
    """Seconds until ``count`` messages whose Message-ID matches ``like`` are indexed."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        [(done,)] = installation.query(
            "SELECT count(*) FROM archive_message WHERE indexed AND message_id LIKE ?", like
        )
        if int(done) >= count:  # type: ignore[call-overload]
            return time.monotonic() - started
        time.sleep(0.25)
    raise SystemExit(f"only {done} of {count} searchable after {timeout:.0f} s")


def start(installation: Installation, consumers: int) -> tuple[Smtpd, list[Process]]:
    listener = Smtpd(installation, "--no-consumer").start()
    workers = [
        Process(installation, f"consumer{i}", "smtpd", "--no-listener").start()
        for i in range(consumers)
    ]
    return listener, workers


def report(label: str, count: int, accept_s: float, searchable_s: float) -> None:
    print(f"{label}: {count:,} messages")
    print(f"  accepted (250)         {count / accept_s:8.1f} msg/s  ({accept_s:.1f} s)")
    print(f"  end-to-end searchable  {count / searchable_s:8.1f} msg/s  ({searchable_s:.1f} s)")


def bench_smtp_source(installation: Installation, args: argparse.Namespace) -> None:
    import subprocess

    listener, workers = start(installation, args.consumers)
    try:
        command = [
            SMTP_SOURCE, "-s", str(args.sessions), "-m", str(args.count), "-l", str(args.size),
            "-M", "bench.contoso.test", "-f", "bench@contoso.com",
            "-t", installation.addresses["open"], f"127.0.0.1:{listener.port}",
        ]  # fmt: skip
        began = time.monotonic()
        subprocess.run(command, check=True)
        accept_s = time.monotonic() - began
        searchable_s = accept_s + wait_searchable(
            installation, "%@bench.contoso.test>", args.count, args.timeout
        )
    finally:
        listener.stop()
        for worker in workers:
            worker.stop()
    report(f"smtp-source -s {args.sessions} -l {args.size}", args.count, accept_s, searchable_s)


def enron_messages(count: int) -> Iterator[bytes]:
    """Real Enron mail with a Message-ID and a From (the envelope needs both)."""
    found = 0
    while True:  # go round again if the subset is smaller than --count
        for path in iter_files(message_root("enron-subset")):
            raw = path.read_bytes()
            head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            if b"\nMessage-ID:" not in b"\n" + head or b"\nFrom:" not in b"\n" + head:
                continue
            yield raw
            found += 1
            if found >= count:
                return


def wrap(number: int, raw: bytes, to: str) -> tuple[str, bytes]:
    """An Exchange Online journal report around ``raw``, named by a unique Message-ID of
    the envelope (the original keeps its own bytes; a repeat gets a counter header so
    that it is a distinct message)."""
    parsed = email.message_from_bytes(raw)
    sender = email.utils.parseaddr(str(parsed.get("From", "")))[1] or "unknown@enron.com"
    recipients = [a for _, a in email.utils.getaddresses(parsed.get_all("To", []))][:50]
    original = f"X-Bench-Number: {number}\r\n".encode() + raw
    mid = f"<bench-{number}@journal.bench>"
    envelope = "".join(
        [f"Sender: {sender}\r\n", f"Message-ID: {mid}\r\n"] + [f"To: {r}\r\n" for r in recipients]
    )
    head = (
        f"From: journal@enron.com\r\nTo: {to}\r\nSubject: journal\r\nX-MS-Journal-Report:\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=_jr_"\r\n\r\n--=_jr_\r\n'
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + envelope + "--=_jr_\r\n"
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    ).encode()
    return mid, head + original + b"\r\n--=_jr_--\r\n"


def bench_enron(installation: Installation, args: argparse.Namespace) -> None:
    import smtplib

    to = installation.addresses["open"]
    reports = [wrap(i, raw, to)[1] for i, raw in enumerate(enron_messages(args.count))]
    listener, workers = start(installation, args.consumers)
    next_index = iter(range(len(reports)))
    lock = threading.Lock()
    acked = 0

    def session() -> None:
        nonlocal acked
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=60) as smtp:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                smtp.sendmail("journal@enron.com", [to], reports[index])
                with lock:
                    acked += 1

    try:
        began = time.monotonic()
        threads = [threading.Thread(target=session) for _ in range(args.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accept_s = time.monotonic() - began
        # The originals are what becomes searchable; each carries X-Bench-Number, so
        # count the archive's messages that came in through this endpoint.
        started = time.monotonic()
        while time.monotonic() - started < args.timeout:
            [(done,)] = installation.query(
                "SELECT count(*) FROM archive_message WHERE indexed AND source = 'smtp'"
            )
            if int(done) >= acked:  # type: ignore[call-overload]
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"only {done} of {acked} searchable after {args.timeout:.0f} s")
        searchable_s = time.monotonic() - began
    finally:
        listener.stop()
        for worker in workers:
            worker.stop()
    size = sum(len(r) for r in reports) / max(1, len(reports))
    report(
        f"Enron journal reports (avg {size / 1024:.1f} KB), {args.sessions} sessions",
        acked,
        accept_s,
        searchable_s,
    )


def bench_chaos(installation: Installation, args: argparse.Namespace) -> None:
    result = run_chaos(
        installation,
        count=args.count,
        sessions=args.sessions,
        consumers=args.consumers,
        kill_interval=(2.0, 5.0),
        min_kills=5,
        send_timeout=args.timeout,
        drain_timeout=args.timeout,
    )
    print(
        f"chaos: {result.acked:,} acknowledged, {result.archived_ok:,} archived exactly once per "
        f"mailbox, {len(result.missing)} lost, {len(result.wrong)} misfiled; "
        f"{result.listener_kills} listener and {result.consumer_kills} consumer SIGKILLs; "
        f"{result.temporary_failures} client retries; smtp-source runs {result.load_runs}; "
        f"sent in {result.send_seconds:.1f} s, drained in {result.drain_seconds:.1f} s"
    )
    if result.missing or result.wrong or result.archived_ok != result.acked:
        raise SystemExit("FAILED: a message that got its 250 is not archived exactly once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--enron", action="store_true", help="journal reports from Enron mail")
    mode.add_argument("--chaos", action="store_true", help="SIGKILL processes while sending")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100 * 1024, help="smtp-source -l")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument(
        "--listener-processes", type=int, default=0, help="smtpd --processes (0: one per CPU)"
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mv-bench-smtp-"))
    print(f"installation in {workdir / 'var'} (building: migrate, tenant, endpoints)")
    try:
        installation = build_installation(workdir / "var")
        installation.env["MAILVAULT_SMTP_PROCESSES"] = str(args.listener_processes)
        if args.chaos:
            bench_chaos(installation, args)
        elif args.enron:
            bench_enron(installation, args)
        else:
            bench_smtp_source(installation, args)
    finally:
        if args.workdir is None:  # a --workdir is kept for a look afterwards
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
