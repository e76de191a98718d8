"""``mailvault import`` as an operator runs it: real subprocesses on a private var
folder (SQLite file database, store, index, master key), killed with SIGKILL midway,
fed bad input, and measured for memory. Plus the in-process checks of ``run_import``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_django import Settings

from corpus import archive_settings, message_root
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.ingestion.imports import ImportRefused, prepare_workers, run_import
from mailvault.sources.files import ImportItem, iter_items
from mailvault.sources.files.mbox import count_from_lines
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import provision_tenant

MAILVAULT = str(Path(sys.executable).with_name("mailvault"))
RSS_LIMIT_MB = 400

# Run inside the var folder's environment: create a mailbox, or report what is archived
# and what the index holds.
SETUP = """
import sys, django
django.setup()
from mailvault.archive.services import create_mailbox
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
with tenant_context(Tenant.objects.get(name=sys.argv[1])):
    create_mailbox(sys.argv[2])
"""
STATE = """
import json, sys, django
django.setup()
from mailvault.archive.models import Message
from mailvault.archive.store import store_for
from mailvault.search import TenantIndex
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
tenant = Tenant.objects.get(name=sys.argv[1])
with tenant_context(tenant), store_for(tenant) as store:
    shas = sys.argv[2:]
    print(json.dumps({
        "archive": sorted(Message.objects.values_list("pk", flat=True)),
        "unindexed": Message.objects.filter(indexed=False).count(),
        "index": sorted(TenantIndex.open(tenant.pk).message_ids()),
        "stored": store.message_count(),
        "locations": {
            s: [loc.pack, loc.offset, loc.length, str(store._packs.path(loc.pack))]
            for s in shas
            if (loc := store.location(s)) is not None
        },
    }))
"""


@dataclass
class Var:
    """A private Mailvault installation driven through its command line."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAILVAULT, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def python(self, script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def tenant(self, name: str, *mailboxes: str) -> None:
        created = self.run("tenant", "create", name)
        assert created.returncode == 0, created.stderr
        for address in mailboxes:
            self.python(SETUP, name, address)

    def state(self, tenant: str, *shas: str) -> dict[str, object]:
        return json.loads(self.python(STATE, tenant, *shas).strip().splitlines()[-1])

    def db(self) -> sqlite3.Connection:
        """Read-write, though only read: after a SIGKILL, opening may roll a hot journal
        back, which a read-only connection cannot do."""
        return sqlite3.connect(self.root / "mailvault.sqlite3", timeout=30)

    def counts(self, tenant: str) -> tuple[int, int]:
        """(messages, placements) of ``tenant``, read straight from the database."""
        with closing(self.db()) as db:
            (tid,) = db.execute(
                "SELECT id FROM tenancy_tenant WHERE name = ?", (tenant,)
            ).fetchone()
            messages = db.execute(
                "SELECT count(*) FROM archive_message WHERE tenant_id = ?", (tid,)
            ).fetchone()[0]
            placements = db.execute(
                "SELECT count(*) FROM archive_placement WHERE tenant_id = ?", (tid,)
            ).fetchone()[0]
        return messages, placements

    def placements(self, tenant: str) -> list[tuple[str, str]]:
        with closing(self.db()) as db:
            return db.execute(
                "SELECT f.path, m.sha256 FROM archive_placement p "
                "JOIN archive_folder f ON f.id = p.folder_id "
                "JOIN archive_message m ON m.id = p.message_id "
                "JOIN tenancy_tenant t ON t.id = p.tenant_id WHERE t.name = ?",
                (tenant,),
            ).fetchall()


@pytest.fixture(scope="module")
def var(tmp_path_factory: pytest.TempPathFactory) -> Var:
    root = tmp_path_factory.mktemp("var")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAILVAULT_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "MAILVAULT_VAR_DIR": str(root),
        "DJANGO_SETTINGS_MODULE": "mailvault.settings",
        "MAILVAULT_LOG_LEVEL": "WARNING",
    }
    installation = Var(root, env)
    migrated = installation.run("migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    return installation


def source_placements(path: Path) -> set[tuple[str, str]]:
    """(folder, SHA-256) of every message the readers find in ``path``."""
    return {
        (e.folder_path, hashlib.sha256(e.raw).hexdigest())
        for e in iter_items(path, allowed_roots=None)
        if isinstance(e, ImportItem)
    }


@pytest.fixture(scope="module")
def big_mbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real R-help months joined into one MBOX of at least 8,000 messages."""
    months = sorted(message_root("r-help").glob("2004-*.txt"))
    path = tmp_path_factory.mktemp("big") / "r-help-2004.mbox"
    total = 0
    with path.open("wb") as out:
        for month in months:
            with month.open("rb") as fh:
                total += count_from_lines(fh)
            data = month.read_bytes()
            out.write(data if data.endswith(b"\n\n") else data.rstrip(b"\n") + b"\n\n")
            if total >= 8000:
                break
    return path


def _cmdline_has(pid: int, text: bytes) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_an_import_killed_midway_and_run_again_gives_exact_counts(var: Var, big_mbox: Path) -> None:
    var.tenant("killed", "list@killed")
    expected = source_placements(big_mbox)
    shas = {sha for _, sha in expected}
    assert len(shas) > 5000
    args = ("import", "--tenant", "killed", "--mailbox", "list@killed", "--no-progress")
    process = subprocess.Popen(
        [MAILVAULT, *args, str(big_mbox)],
        # Grouped commits every 50 ms rather than every second: several land before the
        # kill, which then falls between two of them, as it would in a long import.
        env={**var.env, "MAILVAULT_IMPORT_COMMIT_MS": "50"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while var.counts("killed")[0] < 1500:
            assert process.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "no messages arrived"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # Its prepare workers go with it (none stays behind as an orphan).
    worker_line = str(big_mbox).encode()
    for _ in range(100):
        alive = [
            pid
            for pid in os.listdir("/proc")
            if pid.isdigit() and _cmdline_has(int(pid), worker_line)
        ]
        if not alive:
            break
        time.sleep(0.05)
    assert alive == [], f"prepare workers outlived the killed import: {alive}"
    messages_at_kill = var.counts("killed")[0]
    assert 0 < messages_at_kill < len(shas), "the import must be stopped midway"

    done = var.run(*args, str(big_mbox))
    assert done.returncode == 0, done.stderr
    skipped = int(re.search(r"skipped \(imported before\) (\d+)", done.stdout).group(1))
    assert skipped >= messages_at_kill - 500  # at most one batch was read again
    assert var.counts("killed") == (len(shas), len(expected))
    placements = var.placements("killed")
    assert len(placements) == len(set(placements))  # every placement exists once
    assert set(placements) == expected

    # A third run adds nothing.
    again = var.run(*args, str(big_mbox))
    assert again.returncode == 0, again.stderr
    assert "archived 0, filed 0" in again.stdout
    assert var.counts("killed") == (len(shas), len(expected))

    # The reconcile step makes the index complete, whatever the kill left unindexed.
    reconciled = var.run("reindex", "--tenant", "killed", "--reconcile")
    assert reconciled.returncode == 0, reconciled.stderr
    state = var.state("killed")
    assert state["unindexed"] == 0
    assert state["index"] == state["archive"]
    assert state["stored"] == len(shas)
    # The store survived the kill intact.
    verified = var.run("verify", "--tenant", "killed")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def write_messages(folder: Path, count: int) -> list[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    raws = []
    for n in range(count):
        raw = (
            f"From: a@example.com\r\nTo: b@example.com\r\nSubject: item {n}\r\n"
            f"Message-ID: <{n}.{folder.name}@example.com>\r\n\r\nbody {n}\r\n"
        ).encode()
        (folder / f"{n}.eml").write_bytes(raw)
        raws.append(raw)
    return raws


def test_verify_command_detects_one_flipped_byte(var: Var, tmp_path: Path) -> None:
    var.tenant("flipped", "box@flipped")
    raws = write_messages(tmp_path / "mails", 8)
    done = var.run("import", "--tenant", "flipped", "--mailbox", "box@flipped", str(tmp_path))
    assert done.returncode == 0, done.stderr
    ok = var.run("verify", "--tenant", "flipped")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no mismatches" in ok.stdout

    shas = [hashlib.sha256(raw).hexdigest() for raw in raws]
    victim = shas[5]
    locations = var.state("flipped", *shas)["locations"]
    pack, offset, length, pack_file = locations[victim]  # type: ignore[index]
    # Small messages share a block record: a byte flipped in it damages all of them.
    inside = [sha for sha in shas if locations[sha][:2] == [pack, offset]]  # type: ignore[index]
    with open(pack_file, "r+b") as handle:
        handle.seek(offset + length // 2)
        byte = handle.read(1)
        handle.seek(-1, io.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x80]))

    bad = var.run("verify", "--tenant", "flipped")
    assert bad.returncode != 0
    for sha in inside:
        named = [line for line in bad.stdout.splitlines() if sha in line]
        assert len(named) == 1, bad.stdout
        assert f"pack {pack} offset {offset}" in named[0]
    assert f"{len(inside)} mismatch" in bad.stderr


def test_an_unknown_mailbox_or_tenant_is_refused(var: Var, tmp_path: Path) -> None:
    var.tenant("refusals", "box@refusals")
    write_messages(tmp_path, 2)
    unknown = var.run(
        "import", "--tenant", "refusals", "--mailbox", "nobody@refusals", str(tmp_path)
    )
    assert unknown.returncode != 0
    assert "has no mailbox 'nobody@refusals'" in unknown.stderr
    no_tenant = var.run("import", "--tenant", "nosuch", "--mailbox", "box@refusals", str(tmp_path))
    assert no_tenant.returncode != 0
    assert "No tenant named 'nosuch'" in no_tenant.stderr
    missing = var.run(
        "import", "--tenant", "refusals", "--mailbox", "box@refusals", str(tmp_path / "gone")
    )
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr
    assert var.counts("refusals") == (0, 0)


def import_bad(var: Var, tenant: str, path: Path) -> subprocess.CompletedProcess[str]:
    return var.run("import", "--tenant", tenant, "--mailbox", f"box@{tenant}", str(path))


def test_a_truncated_mbox_keeps_every_whole_message_and_reports_the_cut(
    var: Var, tmp_path: Path
) -> None:
    var.tenant("truncated", "box@truncated")
    messages = [
        f"From a@example.com Tue Apr  1 00:06:38 2003\nFrom: a@example.com\nSubject: m{n}\n\n"
        f"line one of {n}\nline two of {n}\n\n"
        for n in range(3)
    ]
    whole = "".join(messages).encode()
    path = tmp_path / "cut.mbox"
    path.write_bytes(whole[: len(whole) - 12])  # ends inside the third message's body
    done = import_bad(var, "truncated", path)
    assert "truncated" in done.stdout, done.stdout
    assert var.counts("truncated") == (3, 3)
    # The first two are byte-exact; the cut one is kept as far as it goes.
    placed = {sha for _, sha in var.placements("truncated")}
    for text in messages[:2]:
        body = text.split("\n", 1)[1].encode()[:-1]  # without the From line and blank line
        assert hashlib.sha256(body).hexdigest() in placed


def test_a_corrupt_pst_is_a_clear_error_and_writes_nothing(var: Var, tmp_path: Path) -> None:
    var.tenant("corrupt", "box@corrupt")
    path = tmp_path / "mail.pst"
    path.write_bytes(b"!BDN" + random.Random(1).randbytes(300_000))
    done = import_bad(var, "corrupt", path)
    assert done.returncode == 2
    assert "cannot open PST/OST file" in done.stdout
    assert "failed 1" in done.stdout
    assert var.counts("corrupt") == (0, 0)


def test_a_zip_bomb_is_refused_and_writes_nothing(var: Var, tmp_path: Path) -> None:
    var.tenant("bomb", "box@bomb")
    path = tmp_path / "bomb.zip"
    header = b"From: a@example.com\r\nSubject: bomb\r\n\r\n"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("mail.eml", "w", force_zip64=True) as member,
    ):
        member.write(header)
        zero = bytes(1 << 20)
        for _ in range(1024):  # 1 GiB of zeros, about 1 MB compressed
            member.write(zero)
    assert path.stat().st_size < 5 << 20
    started = time.monotonic()
    done = import_bad(var, "bomb", path)
    assert time.monotonic() - started < 60
    assert done.returncode == 2, done.stdout + done.stderr
    assert "problem:" in done.stdout and "bomb.zip" in done.stdout
    assert var.counts("bomb") == (0, 0)


def test_a_50_mb_message_imports_within_the_memory_bound(var: Var, tmp_path: Path) -> None:
    var.tenant("huge", "box@huge")
    rng = random.Random(50)
    path = tmp_path / "huge.eml"
    with path.open("wb") as out:
        out.write(
            b"From: a@example.com\r\nTo: b@example.com\r\nSubject: a big one\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
            b'--b\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        line = 57 * 1000  # 76-character lines
        for _ in range(38 * 1024 * 1024 // line):
            chunk = rng.randbytes(line)
            lines = (base64.b64encode(chunk[i : i + 57]) for i in range(0, line, 57))
            out.write(b"\r\n".join(lines) + b"\r\n")
        out.write(b"--b--\r\n")
    size = path.stat().st_size
    assert size >= 50_000_000
    # The import runs under a small Python that reports its child's peak RSS: measured
    # from this (large) pytest process, the child's figure would include the copy of
    # pytest it was forked from before exec.
    measure = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
        "capture_output=True, text=True); sys.stdout.write(r.stdout + r.stderr); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(r.returncode)"
    )
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            measure,
            MAILVAULT,
            "import",
            "--tenant",
            "huge",
            "--mailbox",
            "box@huge",
            "--no-progress",
            str(path),
        ],
        env=var.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out, err = process.stdout, process.stderr
    peak_mb = int(out.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    print(f"\npeak RSS importing a {size / 1e6:.0f} MB message: {peak_mb:.0f} MB")
    assert process.returncode == 0, out + err
    assert "archived 1" in out
    assert peak_mb < RSS_LIMIT_MB
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert [s for _, s in var.placements("huge")] == [sha]
    assert var.run("verify", "--tenant", "huge").returncode == 0


# --- in process: run_import's own refusals ---------------------------------------------


@pytest.fixture
def mailbox(db: None, settings: Settings, tmp_path: Path) -> Iterator[Mailbox]:
    for name, value in archive_settings(tmp_path / "var").items():
        setattr(settings, name, value)
    tenant = provision_tenant("imports").tenant
    with tenant_context(tenant):
        yield create_mailbox("box@imports")


def test_a_path_outside_the_allowed_roots_is_refused_before_reading(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    write_messages(allowed, 2)
    outside = tmp_path / "outside"
    write_messages(outside, 2)
    (allowed / "link").symlink_to(outside)
    with pytest.raises(ImportRefused, match="outside the allowed import folders"):
        run_import(mailbox, [outside], allowed_roots=[allowed])
    with pytest.raises(ImportRefused, match="outside the allowed import folders"):
        run_import(mailbox, [allowed / "link"], allowed_roots=[allowed])
    with pytest.raises(ImportRefused, match="outside"):
        run_import(mailbox, [allowed / ".." / "outside"], allowed_roots=[allowed])
    assert (Message.objects.count(), Placement.objects.count()) == (0, 0)
    # Inside the root, a symlink that leads out is reported, not followed.
    report = run_import(mailbox, [allowed], allowed_roots=[allowed])
    assert (report.archived, report.failed) == (2, 1)
    assert any("outside the allowed import roots" in p for p in report.problems)
    assert Message.objects.count() == 2


def test_progress_gets_the_estimated_total_and_without_it_nothing_is_counted(
    mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_messages(tmp_path / "a", 3)
    write_messages(tmp_path / "b", 2)
    seen: list[tuple[int, int | None]] = []
    report = run_import(
        mailbox, [tmp_path / "a"], allowed_roots=[], progress=lambda d, t: seen.append((d, t))
    )
    assert report.archived == 3 and seen and seen[-1] == (3, 3)

    def no_count(path: Path) -> int:
        raise AssertionError("counted without a progress bar")

    # Counting reads every file once more: an import without a progress bar skips it.
    monkeypatch.setattr("mailvault.ingestion.imports.estimate_total", no_count)
    assert run_import(mailbox, [tmp_path / "b"], allowed_roots=[]).archived == 2


def test_two_folders_with_files_of_the_same_names_are_both_imported(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    write_messages(tmp_path / "alice", 3)  # 0.eml, 1.eml, 2.eml
    write_messages(tmp_path / "bob", 3)  # the same names, other messages
    first = run_import(mailbox, [tmp_path / "alice"], allowed_roots=[])
    second = run_import(mailbox, [tmp_path / "bob"], allowed_roots=[])
    assert (first.archived, second.archived, second.skipped) == (3, 3, 0)
    # The same folder again is recognised item by item, before anything is read.
    again = run_import(mailbox, [tmp_path / "bob"], allowed_roots=[])
    assert (again.archived, again.skipped) == (0, 3)
    assert Message.objects.count() == 6
    # One file of a folder imported before, on its own: the same item, not read again.
    alone = run_import(mailbox, [tmp_path / "bob" / "1.eml"], allowed_roots=[])
    assert (alone.archived, alone.skipped) == (0, 1)


def test_batches_over_the_byte_limit_are_counted_too(
    mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ingestor runs a batch on its own once its messages pass a byte limit (one
    message of 150 MB does, or 500 with attachments): the report counts those too."""
    monkeypatch.setattr("mailvault.ingestion.imports.IMPORT_BATCH_BYTES", 1024)
    write_messages(tmp_path / "m", 12)
    report = run_import(mailbox, [tmp_path / "m"], allowed_roots=[])
    assert (report.archived, report.filed, report.duplicates) == (12, 12, 0)
    assert Message.objects.count() == 12
    mailbox.refresh_from_db()
    assert mailbox.last_import_at is not None


def test_prepare_workers_leave_a_core_to_the_importer() -> None:
    assert [prepare_workers(cpus) for cpus in (1, 2, 3, 4, 8, 64)] == [1, 1, 2, 3, 3, 3]
