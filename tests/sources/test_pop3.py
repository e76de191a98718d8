"""POP3 archiving profiles against a real Dovecot: by UIDL, incremental, delete in source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from factories import TenantWorld
from mailvault.archive.models import Placement
from mailvault.jobs.models import JobRun
from mailvault.sources.models_profiles import ArchivingProfile, Pop3SeenUidl
from mailvault.tenancy.context import tenant_context
from sources.dovecot_server import PASSWORD, Dovecot
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


def pop3_subjects(tenant: TenantWorld) -> list[str]:
    with tenant_context(tenant.tenant):
        return sorted(
            Placement.objects.filter(
                mailbox=tenant.mailbox, source_ref__startswith="pop3:", folder__path="Inbox"
            ).values_list("message__subject", flat=True)
        )


def test_pop3_by_uidl_incremental_over_tls(tenant_a: TenantWorld, pop_account: Account) -> None:
    pop_account.append("INBOX", "pop one")
    pop_account.append("INBOX", "pop two")
    profile = make_profile(tenant_a, pop_account, type=ArchivingProfile.Type.POP3)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert pop3_subjects(tenant_a) == ["pop one", "pop two"]
    with tenant_context(tenant_a.tenant):
        assert Pop3SeenUidl.objects.filter(profile=profile).count() == 2

    pop_account.append("INBOX", "pop three")
    run, log = run_profile(tenant_a, profile)
    assert any("1 messages fetched: 1 filed" in line for line in log), log
    assert pop3_subjects(tenant_a) == ["pop one", "pop three", "pop two"]

    # Delete in source turned on later: the messages earlier runs archived go too.
    with tenant_context(tenant_a.tenant):
        ArchivingProfile.objects.filter(pk=profile.pk).update(delete_in_source=True)
        profile.refresh_from_db()
    run, log = run_profile(tenant_a, profile)
    assert any("0 messages fetched" in line for line in log), log
    assert sum(line.startswith("Deleted in the source mailbox") for line in log) == 3, log
    pop_account.imap.select_folder("INBOX", readonly=True)
    assert pop_account.imap.search("ALL") == []
    pop_account.imap.unselect_folder()


def test_pop3_starttls_delete_in_source_and_wrong_password(
    tenant_a: TenantWorld, pop_account: Account
) -> None:
    pop_account.append("INBOX", "to be removed")
    profile = make_profile(
        tenant_a,
        pop_account,
        type=ArchivingProfile.Type.POP3,
        security=ArchivingProfile.Security.STARTTLS,
        delete_in_source=True,
    )
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert pop3_subjects(tenant_a) == ["to be removed"]
    assert any(
        line.startswith("Deleted in the source mailbox: POP3 message") and "archive id" in line
        for line in log
    ), log
    pop_account.imap.select_folder("INBOX", readonly=True)
    assert pop_account.imap.search("ALL") == []

    wrong = make_profile(
        tenant_a, pop_account, type=ArchivingProfile.Type.POP3, name="bad", password="nope"
    )
    run, log = run_profile(tenant_a, wrong)
    assert run.status == JobRun.Status.FAILED
    assert any("Sign-in to the POP3 server" in line and "failed" in line for line in log), log
