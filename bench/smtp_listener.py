"""How fast the journaling listener accepts mail, beside what the machine allows at all.

    .venv/bin/python bench/smtp_listener.py [--messages 10000] [--sessions 20]
        [--size 102400] [--processes 0]

Postfix's ``smtp-source`` (the client piler publishes its figures with) sends
``--messages`` messages of ``--size`` bytes over ``--sessions`` parallel connections, one
message per connection, to ``mailvault smtpd --no-consumer`` in a throw-away installation
(SQLite, spool under a temporary directory). "Accepted" counts only what got its ``250``
after the spool's fsync; the script re-reads the spool and checks that every message is
there, whole. The same client against Postfix's ``smtp-sink`` (C, discards everything,
no fsync) gives the ceiling of client, kernel and loopback on this machine in the same run.
The listener's CPU time per message (all its processes, user and system) is printed too:
on a machine that other work loads, it compares two versions better than msg/s.
Needs the Debian package postfix (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

SETUP = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from mailvault.accounts.services import add_domain
from mailvault.archive.services import create_mailbox
from mailvault.sources.journal_endpoints import create_endpoint
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import provision_tenant
tenant = provision_tenant("bench").tenant
with tenant_context(tenant):
    add_domain("bench.example")
    endpoint = create_endpoint("bench", create_mailbox("journal@bench.example"))
    print(endpoint.smtp_address)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


def send(port: int, recipient: str, args: argparse.Namespace) -> float:
    command = [
        SMTP_SOURCE,
        "-s",
        str(args.sessions),
        "-l",
        str(args.size),
        "-m",
        str(args.messages),
        "-f",
        "sender@bench.example",
        "-t",
        recipient,
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (the listener and its acceptor processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds the processes used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user += int(fields[11]) / ticks
        system += int(fields[12]) / ticks
    return user, system


def count_spooled(spool: Path) -> tuple[int, int]:
    from mailvault.sources.smtp.spool import read_segment

    records = 0
    body_bytes = 0
    for directory in (spool / "active", spool / "ready"):
        for segment in sorted(directory.glob("*.spool")):
            for record in read_segment(segment):
                records += 1
                body_bytes += len(record.body)
    return records, body_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=102_400)
    parser.add_argument("--processes", type=int, default=0, help="0: one per CPU")
    args = parser.parse_args()
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: install the Debian package postfix")

    workdir = Path(tempfile.mkdtemp(prefix="mailvault-smtp-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailvault.settings",
        "MAILVAULT_VAR_DIR": str(workdir / "var"),
        "MAILVAULT_SMTP_SPOOL_LIMIT_BYTES": str(64 << 30),
    }
    env.pop("DATABASE_URL", None)
    listener = sink = None
    try:
        recipient = subprocess.run(
            [sys.executable, "-c", SETUP], env=env, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        port = free_port()
        listener = subprocess.Popen(
            [
                str(VENV_BIN / "mailvault"),
                "smtpd",
                "--no-consumer",
                "--port",
                str(port),
                "--processes",
                str(args.processes),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(port)
        time.sleep(2)  # the extra acceptor processes start after the first one listens
        pids = process_tree(listener.pid)
        user_before, system_before = cpu_seconds(pids)
        elapsed = send(port, recipient, args)
        user_after, system_after = cpu_seconds(pids)
        os.environ["MAILVAULT_VAR_DIR"] = env["MAILVAULT_VAR_DIR"]
        os.environ["DJANGO_SETTINGS_MODULE"] = "mailvault.settings"
        spooled, body_bytes = count_spooled(workdir / "var" / "spool")

        sink_port = free_port()
        sink = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "256"],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(sink_port)
        ceiling = send(sink_port, "x@sink.example", args)
    finally:
        for proc in (listener, sink):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    processes = args.processes or os.cpu_count()
    print(
        f"{args.messages} messages of {args.size} bytes, {args.sessions} sessions, "
        f"{processes} listener processes, load {os.getloadavg()[0]:.1f}"
    )
    print(f"mailvault smtpd (accepted and durable): {args.messages / elapsed:8.0f} msg/s")
    print(f"postfix smtp-sink (discards, ceiling):  {args.messages / ceiling:8.0f} msg/s")
    print(f"ratio to the ceiling: {ceiling / elapsed:.2f}")
    # CPU time per message depends far less on what else runs than msg/s does.
    user, system = user_after - user_before, system_after - system_before
    print(
        f"listener CPU per message: {(user + system) / args.messages * 1e6:.0f} us "
        f"(user {user / args.messages * 1e6:.0f}, system {system / args.messages * 1e6:.0f}; "
        f"{len(pids)} processes)"
    )
    print(f"spooled and whole: {spooled} of {args.messages} ({body_bytes / 1e6:.0f} MB of bodies)")
    if spooled != args.messages:
        raise SystemExit("some accepted messages are not in the spool")


if __name__ == "__main__":
    main()
