"""Bad input for an IMAP profile with delete in source: wrong password, a server that
is not there, a source mailbox or a folder gone between runs. Each says so clearly in
the process log, and nothing is deleted that has no verified archived copy."""

from __future__ import annotations

import os
import time

import pytest

from factories import TenantWorld
from mailvault.archive.models import Placement
from mailvault.jobs.models import JobRun
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context
from sources.dovecot_server import free_port
from sources.imap.chaos_checks import snapshot
from sources.profile_helpers import Account, make_profile, run_profile

pytestmark = pytest.mark.django_db


def archived_paths(world: TenantWorld) -> dict[str, int]:
    with tenant_context(world.tenant):
        rows = Placement.objects.filter(
            mailbox=world.mailbox, source_ref__startswith="imap:"
        ).values_list("folder__path", flat=True)
        counts: dict[str, int] = {}
        for path in rows:
            counts[path] = counts.get(path, 0) + 1
    return counts


def test_wrong_password_fails_clearly_and_deletes_nothing(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.append("INBOX", "stays one")
    account.append("INBOX", "stays two")
    before = snapshot(account.server, account.user)
    profile = make_profile(tenant_a, account, password="wrong-pw", delete_in_source=True)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FAILED, log
    port = account.server.ports["imaps"]
    assert any(
        line.startswith(f"Sign-in to the IMAP server 127.0.0.1:{port} as {account.user} failed")
        and line.endswith("Check the user name and password of the secret.")
        for line in log
    ), log
    assert not any("Deleted in the source mailbox" in line for line in log), log
    assert snapshot(account.server, account.user) == before
    assert archived_paths(tenant_a) == {}
    with tenant_context(tenant_a.tenant):
        profile.refresh_from_db()
        assert not profile.has_succeeded


def test_unreachable_server_fails_clearly(tenant_a: TenantWorld, account: Account) -> None:
    account.append("INBOX", "never reached")
    before = snapshot(account.server, account.user)
    port = free_port()  # nothing listens there
    profile = make_profile(tenant_a, account, port=port, delete_in_source=True)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FAILED, log
    assert any(
        line.startswith(f"Cannot connect to the IMAP server 127.0.0.1:{port}:")
        and "refused" in line
        for line in log
    ), log
    assert snapshot(account.server, account.user) == before
    assert archived_paths(tenant_a) == {}


def test_source_mailbox_removed_between_runs(tenant_a: TenantWorld, account: Account) -> None:
    """The user is removed from the mail server after a first run: the next run cannot
    sign in, says so, and the archived messages stay."""
    account.append("INBOX", "archived first", flags=(b"\\Flagged",))
    profile = make_profile(tenant_a, account, delete_in_source=True)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert archived_paths(tenant_a) == {"Inbox": 1}

    passwd = account.server.dir / "passwd"
    kept = [x for x in passwd.read_text().splitlines() if not x.startswith(account.user + ":")]
    passwd.write_text("".join(f"{x}\n" for x in kept))
    later = time.time() + 2  # Dovecot re-reads the file when its mtime second changes …
    os.utime(passwd, (later, later))
    time.sleep(1.1)  # … and looks at most once a second
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FAILED, log
    assert any("Sign-in to the IMAP server" in x and account.user in x for x in log), log
    assert not any("Deleted in the source mailbox" in line for line in log), log
    assert archived_paths(tenant_a) == {"Inbox": 1}


def test_folder_removed_between_runs_is_reported(tenant_a: TenantWorld, account: Account) -> None:
    account.imap.create_folder("Projects")
    account.append("Projects", "project plan")
    account.append("INBOX", "inbox mail")
    profile = make_profile(tenant_a, account)  # delete in source turned on later
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert archived_paths(tenant_a) == {"Inbox": 1, "Projects": 1}

    account.imap.delete_folder("Projects")
    with tenant_context(tenant_a.tenant):
        ArchivingProfile.objects.filter(pk=profile.pk).update(delete_in_source=True)
        profile.refresh_from_db()
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any(
        "Projects" in line and "no longer on the server" in line and "stay in the archive" in line
        for line in log
    ), log
    # The folder's archived copy stays; INBOX's verified copy is deleted as configured.
    assert archived_paths(tenant_a) == {"Inbox": 1, "Projects": 1}
    assert [x for x in log if x.startswith("Deleted in the source mailbox")] == [
        next(x for x in log if x.startswith("Deleted in the source mailbox: Inbox UID 1"))
    ]
    assert set(snapshot(account.server, account.user)) == set()
