"""A ``mailvault worker`` SIGKILLed in the middle of an IMAP profile run with delete in
source, then started again.

The worker runs in a private installation (its own SQLite file, store, index). It is
killed at an exact point of the IMAP conversation, seen by a proxy: once in the middle
of the fetching, once in the middle of the deletion (a STORE of ``\\Deleted`` reaches
the server, its EXPUNGE never comes). After each kill the run is reaped as lost and the
next run finishes the work. No message may be gone from the source without a verified
archived copy; at the end each is archived exactly once per folder.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from sources.chaos_proxy import ChaosProxy
from sources.imap.chaos_checks import (
    HOLD_WORD,
    ArchiveView,
    fill,
    not_exactly_once,
    sha,
    snapshot,
    unverified_deletions,
)
from sources.profile_helpers import Account
from sources.smtp_servers import Installation, Process, wait_for

pytestmark = pytest.mark.single_db

MAILBOX = "alice@contoso.com"

SETUP = """
import json, sys, django
django.setup()
from mailvault.accounts.secrets import Secret, create_secret
from mailvault.archive.models import Mailbox
from mailvault.compliance import holds
from mailvault.compliance.models_holds import LegalHold
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
a = json.loads(sys.argv[1])
with tenant_context(Tenant.objects.get(pk=a["tenant"])):
    secret = create_secret("imap", Secret.Kind.BASIC, username=a["user"], password=a["password"])
    profile = services.save_profile(services.ProfileData(
        name="chaos", type=ArchivingProfile.Type.IMAP, host="127.0.0.1", port=a["port"],
        security=ArchivingProfile.Security.NONE, address=a["mailbox"], secret=secret,
        mailbox=Mailbox.objects.get(primary_address=a["mailbox"]), delete_in_source=True))
    holds.create_hold(name="case", kind=LegalHold.Kind.QUERY, reason="litigation",
                      actor=None, query=a["hold"])
print(json.dumps(profile.pk))
"""

QUEUE = """
import json, sys, django
django.setup()
from mailvault.jobs.services import run_now
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles.services import PROCESS_TYPE
from mailvault.tenancy.context import tenant_context
profile = ArchivingProfile.unscoped.get(pk=int(sys.argv[1]))
with tenant_context(profile.tenant):
    print(json.dumps(run_now(PROCESS_TYPE, profile).pk))
"""

STATE = """
import hashlib, json, sys, django
django.setup()
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.store import store_for
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
tenant = Tenant.objects.get(pk=int(sys.argv[1]))
with tenant_context(tenant):
    box = Mailbox.objects.get(primary_address=sys.argv[2])
    rows = list(Placement.objects.filter(mailbox=box)
                .values_list("folder__path", "message__sha256"))
    shas = sorted({s for _, s in rows})
    stored = {}
    for s in Message.objects.filter(sha256__in=shas).values_list("sha256", flat=True):
        stored[s] = stored.get(s, 0) + 1
    store = store_for(tenant)
    verified = {s: store.has(s) and hashlib.sha256(store.get(s)).hexdigest() == s for s in shas}
    store.close()
    runs = {r.pk: [r.status, list(JobMessage.objects.filter(run=r).order_by("pk")
                                  .values_list("text", flat=True))]
            for r in JobRun.objects.order_by("pk")}
print(json.dumps({"rows": rows, "stored": stored, "verified": verified, "runs": runs}))
"""


class Killable(Process):
    """``mailvault worker --in-process`` that the proxy thread may SIGKILL."""

    def __init__(self, installation: Installation) -> None:
        super().__init__(installation, "worker", "worker", "--in-process", "--interval", "0.2")
        self.kills = 0

    def sigkill(self, _line: bytes) -> None:
        self.kills += 1
        self.kill()


def state(installation: Installation, tenant: int) -> tuple[ArchiveView, dict[str, list]]:  # type: ignore[type-arg]
    data = json.loads(installation.python(STATE, str(tenant), MAILBOX).strip().splitlines()[-1])
    placements = Counter((path, digest) for path, digest in data["rows"])
    view = ArchiveView(placements, Counter(data["stored"]), data["verified"])
    return view, {k: v for k, v in data["runs"].items()}


def test_sigkilled_worker_mid_fetch_and_mid_delete(
    installation: Installation, account: Account, tmp_path: Path
) -> None:
    filled = fill(account.imap, account.user)
    ever = set(snapshot(account.server, account.user))
    proxy = ChaosProxy(account.server.ports["imap"])
    installation.env |= {
        "MAILVAULT_JOB_HEARTBEAT_SECONDS": "1",
        "MAILVAULT_JOB_LOST_AFTER_SECONDS": "2",
    }
    tenant = int(installation.addresses["tenant"])
    args = {
        "tenant": tenant,
        "user": account.user,
        "password": account.password,
        "port": proxy.port,
        "mailbox": MAILBOX,
        "hold": HOLD_WORD,
    }
    profile = json.loads(installation.python(SETUP, json.dumps(args)).strip().splitlines()[-1])
    worker = Killable(installation)

    def queue() -> str:
        return str(json.loads(installation.python(QUEUE, str(profile)).strip().splitlines()[-1]))

    def status(run: str) -> str:
        return str(installation.query("SELECT status FROM jobs_jobrun WHERE id = ?", run)[0][0])

    def marked_deleted() -> int:
        """Messages flagged \\Deleted but not expunged, in any folder."""
        imap = account.server.client(account.user)
        try:
            found = 0
            for _flags, _delim, name in imap.list_folders():
                imap.select_folder(name, readonly=True)
                found += len(imap.search("DELETED"))
                imap.unselect_folder()
            return found
        finally:
            imap.logout()

    def placements() -> int:
        return int(installation.query("SELECT count(*) FROM archive_placement")[0][0])  # type: ignore[call-overload]

    def check() -> Counter[tuple[str, str]]:
        now = snapshot(account.server, account.user)
        problems = unverified_deletions(ever, now, state(installation, tenant)[0])
        assert not problems, (problems, worker.log_text())
        for folder, raw in (filled.flagged, filled.held):
            assert now[(folder, sha(raw))] == 1
        return now

    try:
        # 1. Killed as INBOX (the last folder) is fetched, once the first folders'
        # messages are in the archive: nothing is deleted yet.
        at_start = placements()
        examined: list[bytes] = []

        def kill_mid_fetch(line: bytes) -> None:
            if b"EXAMINE" in line:
                examined.append(line)
            elif b"UID FETCH" in line and b'"INBOX"' in examined[-1] and not worker.kills:
                wait_for(lambda: placements() > at_start, timeout=30, what="archived batches")
                worker.sigkill(line)

        proxy.hook(b"", kill_mid_fetch, times=10**6)
        worker.start()
        first = queue()
        wait_for(lambda: worker.kills == 1, timeout=60, what="the kill mid-fetch")
        assert check() == Counter({k: 1 for k in ever})  # nothing gone
        archived_after_kill = placements() - at_start
        time.sleep(2.5)  # the heartbeat goes stale: the run is lost
        worker.start()
        wait_for(lambda: status(first) == "failed", timeout=30, what="the killed run reaped")
        runs = state(installation, tenant)[1]
        assert any(t.startswith("Worker lost") for t in runs[first][1]), runs[first]

        # 2. Killed once the second folder's STORE reached the server (no EXPUNGE).
        stores = iter(range(10**6))
        proxy.hook(b"UID STORE", lambda line: next(stores) == 1 and worker.sigkill(line), 10**6)
        second = queue()
        wait_for(lambda: worker.kills == 2, timeout=60, what="the kill mid-delete")
        wait_for(lambda: marked_deleted() > 0, timeout=10, what="the STORE to reach Dovecot")
        check()
        time.sleep(2.5)
        worker.start()
        wait_for(lambda: status(second) == "failed", timeout=30, what="the second run reaped")
        runs = state(installation, tenant)[1]
        assert any(t.startswith("Worker lost") for t in runs[second][1]), runs[second]

        # 3. Started again: the next run finishes the work.
        third = queue()
        wait_for(lambda: status(third) in ("finished", "failed"), timeout=90, what="run 3")
        now = check()
        view, runs = state(installation, tenant)
        log = "\n".join(runs[third][1])
        assert status(third) == "finished", log
    finally:
        worker.stop()
        proxy.close()
    assert 0 < archived_after_kill < len(ever)
    assert not_exactly_once(ever, view) == [], log
    assert set(now) == {
        (filled.flagged[0], sha(filled.flagged[1])),
        (filled.held[0], sha(filled.held[1])),
    }, log
