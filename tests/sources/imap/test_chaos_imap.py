"""Delete in source against Dovecot under chaos: connections dropped mid-FETCH and
mid-deletion (some after the server ran the command, its answer lost), UIDVALIDITY
changed while a folder is read, a folder recreated between fetch and deletion.

After every run: no message is gone from the source without a stored copy (in the same
folder) whose bytes hash to it. At the end: every message is in the archive exactly once
per folder, and only the flagged and the held message are left in the source.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from factories import TenantWorld
from mailvault.archive.models import Message, Placement
from mailvault.archive.store import store_for
from mailvault.compliance import holds
from mailvault.compliance.models_holds import LegalHold
from mailvault.jobs.models import JobRun
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context
from sources.chaos_proxy import ChaosProxy, Fault, random_faults
from sources.imap.chaos_checks import (
    FLAGGED_FOLDER,
    FOLDERS,
    HOLD_WORD,
    ArchiveView,
    Filled,
    fill,
    message,
    not_exactly_once,
    sha,
    snapshot,
    unverified_deletions,
)
from sources.profile_helpers import Account, make_profile, run_profile

pytestmark = [pytest.mark.django_db, pytest.mark.single_db]


def archive_view(world: TenantWorld) -> ArchiveView:
    with tenant_context(world.tenant):
        rows = list(
            Placement.objects.filter(mailbox=world.mailbox).values_list(
                "folder__path", "message__sha256"
            )
        )
        digests = {digest for _, digest in rows}
        stored = Counter(
            Message.objects.filter(sha256__in=digests).values_list("sha256", flat=True)
        )
        store = store_for(world.tenant)
        try:
            verified = {d: store.has(d) and sha(store.get(d)) == d for d in digests}
        finally:
            store.close()
    return ArchiveView(Counter(rows), stored, verified)


def scripted(*faults: Fault | None) -> Callable[[int], Fault | None]:
    """A plan giving the n-th connection the n-th fault, then none."""
    return lambda number: faults[number - 1] if number <= len(faults) else None


class Chaos:
    """The test's account, profile and proxy, and the checks after every run."""

    def __init__(self, world: TenantWorld, account: Account, filled: Filled) -> None:
        self.world = world
        self.account = account
        self.filled = filled
        self.proxy = ChaosProxy(account.server.ports["imap"])
        self.profile = make_profile(
            world,
            account,
            port=self.proxy.port,
            security=ArchivingProfile.Security.NONE,
            delete_in_source=True,
        )
        self.ever: set[tuple[str, str]] = set()
        self.arrivals = 0
        self.deleted_lines = 0
        self.look()

    def look(self) -> Counter[tuple[str, str]]:
        now = snapshot(self.account.server, self.account.user)
        self.ever |= set(now)
        return now

    def new_mail(self, count: int = 2) -> None:
        """Mail keeps arriving between runs: every run has something to delete."""
        for folder in FOLDERS:
            for _ in range(count):
                self.arrivals += 1
                raw = message(self.account.user, f"arrival {self.arrivals}", 4000)
                self.account.imap.append(folder, raw)
        self.look()

    def run(self, plan: Callable[[int], Fault | None] | None = None) -> tuple[JobRun, str]:
        """One run of the profile; then no message may be gone unverified."""
        self.proxy.plan = plan or (lambda number: None)
        self.proxy.connections = 0
        run, lines = run_profile(self.world, self.profile)
        log = "\n".join(lines)
        self.deleted_lines += sum(x.startswith("Deleted in the source mailbox") for x in lines)
        # A run may fail, but with its own clear message: never an unexpected exception.
        crashes = [x for x in lines if x.startswith("Failed:") and "ProfileRunFailed" not in x]
        assert not crashes, log
        now = self.look()
        problems = unverified_deletions(self.ever, now, archive_view(self.world))
        assert not problems, "\n".join([*problems, log, *self.proxy.events])
        for folder, raw in (self.filled.flagged, self.filled.held):
            assert now[(folder, sha(raw))] == 1, (folder, log)
        return run, log

    def change_uidvalidity(self, folder: str, value: int) -> None:
        self.account.server.doveadm(
            "mailbox", "update", "-u", self.account.user, "--uid-validity", str(value), folder
        )

    def flag_one(self, folder: str) -> str:
        """The user flags a message after the job fetched it: it must stay."""
        imap = self.account.server.client(self.account.user)
        try:
            imap.select_folder(folder)
            uid = max(imap.search("ALL"))
            imap.add_flags([uid], [b"\\Flagged"])
            raw = bytes(imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])
        finally:
            imap.logout()
        return sha(raw)

    def recreate(self, folder: str) -> None:
        """The user's mail client deletes ``folder`` and makes it again from a backup:
        a new UIDVALIDITY, the messages in another order (the flagged one second), and
        a newly arrived one third, numbered from just below the UIDs the job is about to
        delete: those UIDs now name other messages."""
        imap = self.account.server.client(self.account.user)
        try:
            imap.select_folder(folder, readonly=True)
            data = imap.fetch(imap.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
            messages = [(bytes(d[b"BODY[]"]), b"\\Flagged" in d[b"FLAGS"]) for d in data.values()]
            unflagged = [uid for uid, d in data.items() if b"\\Flagged" not in d[b"FLAGS"]]
            imap.unselect_folder()
            imap.delete_folder(folder)
            imap.create_folder(folder)
            self.account.server.doveadm(
                "mailbox", "update", "-u", self.account.user,
                "--uid-validity", str(9000 + self.arrivals),
                "--min-next-uid", str(max(1, min(unflagged) - 1)), folder,
            )  # fmt: skip
            flagged = [m for m in messages if m[1]]
            others = [m for m in messages if not m[1]]
            random.Random(11).shuffle(others)
            self.arrivals += 1
            late = (message(self.account.user, f"arrival {self.arrivals}", 500), False)
            order = [*others[:1], *flagged, late, *others[1:]]
            for raw, is_flagged in order:
                imap.append(folder, raw, flags=(b"\\Flagged",) if is_flagged else ())
        finally:
            imap.logout()
        self.ever.add((folder, sha(late[0])))


def test_delete_in_source_survives_drops_and_uidvalidity_changes(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailvault.sources.profiles.job.BATCH_SIZE", 3)  # many FETCHes
    filled = fill(account.imap, account.user)
    with tenant_context(tenant_a.tenant):
        holds.create_hold(
            name="case", kind=LegalHold.Kind.QUERY, reason="litigation", actor=None, query=HOLD_WORD
        )
    chaos = Chaos(tenant_a, account, filled)
    proxy = chaos.proxy
    try:
        # 1. Drops mid-FETCH (mid-literal, and a FETCH that never reaches the server);
        # Lists gets a new UIDVALIDITY while it is being read (after its first batch).
        examined: list[bytes] = []
        changed: list[str] = []

        def uidvalidity_mid_fetch(line: bytes) -> None:
            if b"EXAMINE" in line or b"SELECT" in line:
                examined.append(line)
            elif b"UID FETCH 4" in line and b'"Lists"' in examined[-1] and not changed:
                changed.append("Lists")
                chaos.change_uidvalidity("Lists", 4242)

        proxy.hook(b"", uidvalidity_mid_fetch, times=10**9)
        _run, log = chaos.run(
            scripted(Fault.cut(20_000), Fault.on(b"UID FETCH"), Fault.cut(70_000))
        )
        assert changed == ["Lists"], proxy.events
        assert "reconnecting" in log and "UIDVALIDITY changed" in log and "→ 4242" in log, log

        # 2. New mail; drops while deleting (before STORE reaches the server; after
        # EXPUNGE ran, its answer lost). Once deleting started, Work/Old is recreated
        # and a message in Work is flagged.
        chaos.new_mail()
        flagged_late: list[str] = []

        def meanwhile(line: bytes) -> None:
            chaos.recreate(FLAGGED_FOLDER)
            flagged_late.append(chaos.flag_one("Work"))

        proxy.hook(b"UID STORE", meanwhile)
        _run, log = chaos.run(
            scripted(Fault.on(b"UID STORE"), Fault.on(b"UID EXPUNGE", executed=True))
        )
        assert f"{FLAGGED_FOLDER}: UIDVALIDITY changed" in log, log
        assert "nothing there is deleted" in log, log
        assert sum("dropped" in e and "UID STORE" in e for e in proxy.events) == 1, proxy.events
        assert sum("answer lost" in e for e in proxy.events) == 1, proxy.events

        # 3. Seeded random drops of every kind, with new mail each time.
        for seed in (1, 2, 3):
            chaos.new_mail()
            chaos.run(
                random_faults(
                    seed,
                    probability=0.6,
                    byte_range=(2_000, 60_000),
                    patterns=(b"UID FETCH", b"UID STORE", b"UID EXPUNGE"),
                    limit=4,
                )
            )

        # 4. The network heals: runs until one ends without a warning.
        for _ in range(3):
            run, log = chaos.run()
            if run.max_severity < 30:
                break
        assert run.max_severity < 30, log
        now = chaos.look()
        assert not_exactly_once(chaos.ever, archive_view(tenant_a)) == [], log
        left = {
            (filled.flagged[0], sha(filled.flagged[1])),
            (filled.held[0], sha(filled.held[1])),
            ("Work", flagged_late[0]),
        }
        assert set(now) == left, log
        # Every deletion was logged once, with its archive id.
        assert chaos.deleted_lines == len(chaos.ever) - len(left)
        assert proxy.drops >= 8, proxy.events
    finally:
        proxy.close()
