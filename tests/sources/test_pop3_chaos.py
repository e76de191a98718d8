"""POP3 with delete in source under chaos and bad input, against a real Dovecot.

Connections are cut in the middle of a RETR, before DELE reaches the server, and after
the server ran QUIT (the answer lost: the client cannot tell whether it deleted). After
every run nothing is gone from the server without a verified archived copy; at the end
every message is archived exactly once and the server is empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from factories import TenantWorld
from mailvault.archive.models import Message, Placement
from mailvault.archive.store import store_for
from mailvault.jobs.models import JobRun
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context
from sources.chaos_proxy import ChaosProxy, Fault
from sources.dovecot_server import PASSWORD, Dovecot, free_port
from sources.imap.chaos_checks import (
    ArchiveView,
    message,
    not_exactly_once,
    sha,
    snapshot,
    unverified_deletions,
)
from sources.profile_helpers import Account, make_profile, run_profile, world  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pop_server() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pop_account(pop_server: Dovecot) -> Iterator[Account]:
    user = pop_server.add_user()
    client = pop_server.client(user)
    yield Account(pop_server, user, PASSWORD, client)
    client.logout()


def archive_view(tenant: TenantWorld) -> ArchiveView:
    with tenant_context(tenant.tenant):
        rows = list(
            Placement.objects.filter(mailbox=tenant.mailbox).values_list(
                "folder__path", "message__sha256"
            )
        )
        digests = {d for _, d in rows}
        stored = Counter(
            Message.objects.filter(sha256__in=digests).values_list("sha256", flat=True)
        )
        store = store_for(tenant.tenant)
        try:
            verified = {d: store.has(d) and sha(store.get(d)) == d for d in digests}
        finally:
            store.close()
    return ArchiveView(Counter(rows), stored, verified)


def fill(account: Account, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        account.imap.append("INBOX", message(account.user, f"pop {n}", (300, 9000, 40000)[n % 3]))


@pytest.mark.single_db
def test_pop3_delete_in_source_survives_dropped_connections(
    tenant_a: TenantWorld, pop_account: Account
) -> None:
    fill(pop_account, 8)
    ever = set(snapshot(pop_account.server, pop_account.user))
    proxy = ChaosProxy(pop_account.server.ports["pop3"])
    profile = make_profile(
        tenant_a,
        pop_account,
        type=ArchivingProfile.Type.POP3,
        security=ArchivingProfile.Security.NONE,
        port=proxy.port,
        delete_in_source=True,
    )
    logs: list[str] = []

    def run(fault: Fault | None) -> tuple[JobRun, str]:
        proxy.connections = 0
        proxy.plan = lambda number: fault if number == 1 else None
        job_run, lines = run_profile(tenant_a, profile)
        log = "\n".join(lines)
        logs.append(log)
        crashes = [x for x in lines if x.startswith("Failed:") and "ProfileRunFailed" not in x]
        assert not crashes, log
        now = snapshot(pop_account.server, pop_account.user)
        problems = unverified_deletions(ever, now, archive_view(tenant_a))
        assert not problems, "\n".join([*problems, log, *proxy.events])
        return job_run, log

    try:
        # Cut in the middle of a RETR: what came before is archived, nothing deleted.
        before = snapshot(pop_account.server, pop_account.user)
        job_run, log = run(Fault.cut(60_000))
        assert job_run.status == JobRun.Status.FAILED, log
        assert "The POP3 session failed" in log, log
        assert snapshot(pop_account.server, pop_account.user) == before, log
        assert "The connection closed while fetching POP3 message" in log, log
        with tenant_context(tenant_a.tenant):  # the messages fetched whole are archived
            archived = Placement.objects.filter(source_ref__startswith="pop3:").count()
        assert 0 < archived < 8, log

        # Cut before DELE reaches the server: no QUIT, so the server deletes nothing.
        fill(pop_account, 2, first=8)
        ever |= set(snapshot(pop_account.server, pop_account.user))
        before = snapshot(pop_account.server, pop_account.user)
        job_run, log = run(Fault.on(b"DELE"))
        assert job_run.status == JobRun.Status.FAILED, log
        assert "The POP3 session failed: DELE failed" in log, log
        assert snapshot(pop_account.server, pop_account.user) == before, log

        # Cut after the server ran QUIT (the deletions happened, the answer is lost).
        fill(pop_account, 2, first=10)
        ever |= set(snapshot(pop_account.server, pop_account.user))
        job_run, log = run(Fault.on(b"QUIT", executed=True))
        assert "answer lost" in proxy.events[-1], proxy.events
        assert "The POP3 server did not confirm QUIT" in log, log

        # Healthy again: everything left is archived and deleted.
        fill(pop_account, 1, first=12)
        ever |= set(snapshot(pop_account.server, pop_account.user))
        job_run, log = run(None)
        assert job_run.status == JobRun.Status.FINISHED, log
    finally:
        proxy.close()
    assert snapshot(pop_account.server, pop_account.user) == Counter(), logs
    assert not_exactly_once(ever, archive_view(tenant_a)) == [], logs
    # Each deletion is in a log once (those after the lost QUIT as not confirmed).
    assert sum(x.count("Deleted in the source mailbox") for x in logs) == len(ever) == 13


def test_pop3_wrong_password_or_no_server_deletes_nothing(
    tenant_a: TenantWorld, pop_account: Account
) -> None:
    fill(pop_account, 2)
    before = snapshot(pop_account.server, pop_account.user)
    wrong = make_profile(
        tenant_a,
        pop_account,
        type=ArchivingProfile.Type.POP3,
        password="wrong-pw",
        delete_in_source=True,
    )
    run, log = run_profile(tenant_a, wrong)
    assert run.status == JobRun.Status.FAILED, log
    port = pop_account.server.ports["pop3s"]
    assert any(
        line.startswith(f"Sign-in to the POP3 server 127.0.0.1:{port} as {pop_account.user}")
        and line.endswith("Check the user name and password of the secret.")
        for line in log
    ), log

    closed = free_port()
    nowhere = make_profile(
        tenant_a,
        pop_account,
        type=ArchivingProfile.Type.POP3,
        name="nowhere",
        port=closed,
        delete_in_source=True,
    )
    run, log = run_profile(tenant_a, nowhere)
    assert run.status == JobRun.Status.FAILED, log
    assert any(
        line.startswith(f"Cannot connect to the POP3 server 127.0.0.1:{closed}:") for line in log
    ), log
    assert snapshot(pop_account.server, pop_account.user) == before
    with tenant_context(tenant_a.tenant):
        assert not Placement.objects.filter(source_ref__startswith="pop3:").exists()
