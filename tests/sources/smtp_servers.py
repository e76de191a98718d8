"""Real processes for the end-to-end journaling tests: a private Mailvault installation
(its own var folder: SQLite file database, store, index, spool, master key) driven
through its command line, ``mailvault smtpd`` as a subprocess on a free port, and a
Postfix instance in a temporary directory relaying to it.

The installation is built once per session (migrate and a tenant take seconds) and
copied for each user of it, so that tests do not see each other's mail. Tests read the
outcome straight from the SQLite file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MAILVAULT = str(Path(sys.executable).with_name("mailvault"))
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SWAKS = "/usr/bin/swaks"
SMTP_SOURCE = "/usr/sbin/smtp-source"
JOURNAL_DOMAIN = "journal.test"
AUTH_USER, AUTH_PASSWORD = "m365", "Journal-Secret-42"

# Run inside the installation: one tenant with a journal mailbox, user mailboxes, an open
# endpoint and one that needs SMTP AUTH; prints their addresses as JSON.
SETUP = """
import json, django
django.setup()
from mailvault.accounts.models import Domain
from mailvault.accounts.services import add_domain
from mailvault.archive.services import create_mailbox
from mailvault.archive.models import Mailbox
from mailvault.sources import journal_endpoints as service
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import provision_tenant
tenant = provision_tenant("contoso").tenant
with tenant_context(tenant):
    add_domain("contoso.com")
    Domain.objects.filter(name="contoso.com").update(verified=True)
    journal = create_mailbox("journal@contoso", kind=Mailbox.Kind.JOURNAL)
    for name in ("alice", "bob", "carol"):
        create_mailbox(f"{name}@contoso.com")
    open_ = service.create_endpoint("M365", journal)
    secured = service.create_endpoint(
        "Secured", journal, auth_username=%(user)r, auth_password=%(password)r
    )
print(json.dumps({"open": open_.smtp_address, "open_local": open_.local_part,
                  "secured": secured.smtp_address, "tenant": tenant.pk}))
"""


def need(path: str) -> None:
    """A program the test drives; missing is a skip locally and a failure under CI."""
    if os.path.exists(path):
        return
    reason = f"{path} is not installed (scripts/system-test-deps.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def smtp_banner(port: int) -> bool:
    """Whether an SMTP server answers with its 220 greeting on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


@dataclass
class Installation:
    root: Path
    env: dict[str, str]
    addresses: dict[str, str] = field(default_factory=dict)

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAILVAULT, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def python(self, script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def copy(self, dest: Path) -> Installation:
        shutil.copytree(self.root, dest)
        env = {
            **self.env,
            "MAILVAULT_VAR_DIR": str(dest),
            "MAILVAULT_SPOOL_DIR": str(dest / "spool"),
        }
        return Installation(dest, env, dict(self.addresses))

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "mailvault.sqlite3", timeout=30)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with closing(self.db()) as db:
            return db.execute(sql, params).fetchall()

    def placements(self, message_id: str) -> list[str]:
        """The mailboxes (primary addresses) holding the message, one row per placement."""
        rows = self.query(
            "SELECT b.primary_address FROM archive_placement p "
            "JOIN archive_message m ON m.id = p.message_id "
            "JOIN archive_mailbox b ON b.id = p.mailbox_id WHERE m.message_id = ?",
            message_id,
        )
        return sorted(str(r[0]) for r in rows)

    def message_count(self) -> int:
        return int(self.query("SELECT count(*) FROM archive_message")[0][0])  # type: ignore[call-overload]

    def endpoint_counters(self, local_part: str) -> tuple[int, int, int, str | None]:
        [row] = self.query(
            "SELECT accepted, rejected, deferred, last_received_at FROM sources_journalendpoint "
            "WHERE local_part = ?",
            local_part,
        )
        return row  # type: ignore[return-value]


def build_installation(root: Path) -> Installation:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAILVAULT_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "MAILVAULT_VAR_DIR": str(root),
        "MAILVAULT_SPOOL_DIR": str(root / "spool"),
        "DJANGO_SETTINGS_MODULE": "mailvault.settings",
        "MAILVAULT_LOG_LEVEL": "WARNING",
        "MAILVAULT_JOURNAL_DOMAIN": JOURNAL_DOMAIN,
        # Two listener processes whatever the machine: the multi-process path (counters
        # of both add up, spool segments of both are ingested) without one per CPU.
        "MAILVAULT_SMTP_PROCESSES": "2",
    }
    installation = Installation(root, env)
    migrated = installation.run("migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    out = installation.python(SETUP % {"user": AUTH_USER, "password": AUTH_PASSWORD})
    installation.addresses = json.loads(out.strip().splitlines()[-1])
    return installation


class Process:
    """A long-running ``mailvault`` subprocess in its own session, killable for real."""

    def __init__(self, installation: Installation, name: str, *args: str) -> None:
        self.installation = installation
        self.name = name
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Process:
        self.starts += 1
        log = open(self.installation.root / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [MAILVAULT, *self.args],
            env=self.installation.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")
            for p in sorted(self.installation.root.glob(f"{self.name}-*.log"))
        )


class Smtpd(Process):
    """``mailvault smtpd`` on a free port; ``start()`` returns once it greets."""

    def __init__(self, installation: Installation, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(
            installation,
            "smtpd",
            "smtpd",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        )

    def start(self) -> Smtpd:
        super().start()
        wait_for(
            lambda: smtp_banner(self.port) or not self.alive,
            timeout=60,
            what=f"mailvault smtpd on port {self.port}",
        )
        assert self.alive, self.log_text()
        return self


class Postfix:
    """A Postfix instance of its own (config, queue and data directories in a temp
    folder) that accepts on ``port`` from loopback and relays everything to
    ``[127.0.0.1]:relay_port``. Postfix's daemons run as the ``postfix`` user, so the
    folder lives under /tmp with traversable permissions (pytest's tmp_path is 0700)."""

    def __init__(self, relay_port: int, **main: str) -> None:
        need(POSTFIX)
        if os.geteuid() != 0:  # master(8) starts as root and drops to mail_owner
            reason = "starting a Postfix instance needs root"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        self.relay_port = relay_port
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mv-postfix-", dir="/tmp"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.extra = main
        self.started = False

    def _settings(self) -> dict[str, str]:
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.contoso.test",
            "mydomain": "contoso.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "maillog_file_prefixes": "/tmp",
            "maillog_file": str(self.root / "maillog"),
            "smtp_tls_security_level": "may",
            "smtpd_tls_security_level": "none",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "queue_run_delay": "2s",
            **self.extra,
        }

    def start(self) -> Postfix:
        for name in ("conf", "queue", "data"):
            (self.root / name).mkdir()
        shutil.chown(self.root / "data", "postfix")
        shutil.copy("/etc/postfix/master.cf", self.conf / "master.cf")
        (self.conf / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in self._settings().items())
        )
        postconf = [POSTCONF, "-c", str(self.conf)]
        for args in (
            ["-F", "*/*/chroot = n"],  # no chroot: nothing to copy into the queue folder
            ["-M#", "smtp/inet"],
            [
                "-M",
                f"127.0.0.1:{self.port}/inet = 127.0.0.1:{self.port} inet n - n - - smtpd",
            ],
        ):
            subprocess.run([*postconf, *args], check=True, capture_output=True)
        done = subprocess.run(
            [POSTFIX, "-c", str(self.conf), "start"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr + self.log()
        self.started = True
        wait_for(lambda: smtp_banner(self.port), timeout=30, what="Postfix smtpd")
        return self

    def flush(self) -> None:
        """Retry the deferred queue now."""
        subprocess.run([POSTFIX, "-c", str(self.conf), "flush"], capture_output=True, timeout=30)

    def queue_empty(self) -> bool:
        queue = self.root / "queue"
        return not any(
            f.is_file()
            for sub in ("incoming", "active", "deferred", "maildrop")
            for f in (queue / sub).rglob("*")
        )

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.started:
            subprocess.run([POSTFIX, "-c", str(self.conf), "stop"], capture_output=True, timeout=60)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
