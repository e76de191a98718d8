"""IMAP archiving profiles against a real Dovecot: what is archived, and what is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factories import TenantWorld
from mailvault.archive.models import Placement
from mailvault.jobs.models import JobRun
from mailvault.sources.imap import FolderGone, FolderState, ImapSession
from mailvault.sources.models_profiles import ArchivingProfile, FolderSyncState
from mailvault.sources.profiles import services
from mailvault.tenancy.context import tenant_context
from sources.dovecot_server import MASTER, PASSWORD, Dovecot, DroppingProxy
from sources.profile_helpers import Account, make_profile, run_profile

pytestmark = pytest.mark.django_db


def archived(world: TenantWorld) -> dict[str, list[str]]:
    """Folder path → subjects archived from IMAP into the world's mailbox."""
    with tenant_context(world.tenant):
        rows = Placement.objects.filter(
            mailbox=world.mailbox, source_ref__startswith="imap:"
        ).values_list("folder__path", "message__subject")
        result: dict[str, list[str]] = {}
        for path, subject in rows:
            result.setdefault(path, []).append(subject)
    return {k: sorted(v) for k, v in result.items()}


def test_initial_then_incremental_skips_junk_trash_and_decodes_utf7(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailvault.sources.profiles.job.BATCH_SIZE", 2)  # several batches
    account.imap.create_folder("Projekte/Übersicht")
    for n in range(3):
        account.append("INBOX", f"inbox {n}")
    account.append("Projekte/Übersicht", "umlaut folder")
    account.append("Junk", "spam")
    account.append("Trash", "deleted")
    profile = make_profile(tenant_a, account)

    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("4 messages fetched: 4 filed" in line for line in log), log
    assert archived(tenant_a) == {
        "Inbox": ["inbox 0", "inbox 1", "inbox 2"],
        "Projekte/Übersicht": ["umlaut folder"],
    }
    with tenant_context(tenant_a.tenant):
        state = FolderSyncState.objects.get(profile=profile, folder="Inbox")
        assert state.last_uid == 3 and state.uidvalidity > 0
        assert state.highest_modseq is not None  # CONDSTORE/QRESYNC were enabled
        profile.refresh_from_db()
        assert profile.has_succeeded

    account.append("INBOX", "inbox 3")
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED
    assert any("1 messages fetched" in line for line in log), log
    assert archived(tenant_a)["Inbox"] == ["inbox 0", "inbox 1", "inbox 2", "inbox 3"]


def test_uidvalidity_change_resyncs_without_duplicates(
    tenant_a: TenantWorld, account: Account
) -> None:
    for n in range(2):
        account.append("INBOX", f"m {n}")
    profile = make_profile(tenant_a, account)
    run_profile(tenant_a, profile)
    account.server.doveadm("mailbox", "update", "-u", account.user, "--uid-validity", "77", "INBOX")

    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("UIDVALIDITY changed" in line for line in log), log
    assert any("2 messages fetched: 0 filed" in line for line in log), log
    assert archived(tenant_a) == {"Inbox": ["m 0", "m 1"]}
    with tenant_context(tenant_a.tenant):
        assert FolderSyncState.objects.get(profile=profile, folder="Inbox").uidvalidity == 77


def test_include_and_exclude_folders(tenant_a: TenantWorld, account: Account) -> None:
    account.imap.create_folder("Work")
    account.imap.create_folder("Work/Old")
    account.append("INBOX", "in inbox")
    account.append("Work", "work")
    account.append("Work/Old", "old work")
    account.append("Junk", "spam")
    only_work = make_profile(
        tenant_a,
        account,
        name="only work",
        include_folders="Work\nJunk",
        exclude_folders="Work/Old",
        skip_junk_trash=False,
    )
    run, log = run_profile(tenant_a, only_work)
    assert run.status == JobRun.Status.FINISHED, log
    assert archived(tenant_a) == {"Junk": ["spam"], "Work": ["work"]}


def test_starttls_and_wrong_password(tenant_a: TenantWorld, account: Account) -> None:
    account.append("INBOX", "over starttls")
    profile = make_profile(tenant_a, account, security=ArchivingProfile.Security.STARTTLS)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert archived(tenant_a) == {"Inbox": ["over starttls"]}

    wrong = make_profile(tenant_a, account, name="wrong", password="not-the-password")
    run, log = run_profile(tenant_a, wrong)
    assert run.status == JobRun.Status.FAILED
    assert any(
        f"Sign-in to the IMAP server 127.0.0.1:{account.server.ports['imaps']} as {account.user} "
        "failed" in line
        for line in log
    ), log


def test_unfetchable_message_is_reported_and_the_run_continues(
    tenant_a: TenantWorld, account: Account
) -> None:
    for n in range(3):
        account.append("INBOX", f"n {n}")
    account.imap.select_folder("INBOX")
    account.imap.unselect_folder()
    cur = Path(account.server.maildir(account.user)) / "cur"
    files = sorted(cur.iterdir()) if cur.exists() else []
    new = Path(account.server.maildir(account.user)) / "new"
    files += sorted(new.iterdir()) if new.exists() else []
    assert len(files) == 3
    broken = next(f for f in files if b"Subject: n 1" in f.read_bytes())
    os.chmod(broken, 0)
    profile = make_profile(tenant_a, account, delete_in_source=True)
    try:
        run, log = run_profile(tenant_a, profile)
    finally:
        os.chmod(broken, 0o600)
    assert run.status == JobRun.Status.FINISHED
    assert run.max_severity >= 40  # an error is in the log
    assert any("UID 2 could not be fetched" in line for line in log), "\n".join(log)
    assert archived(tenant_a) == {"Inbox": ["n 0", "n 2"]}
    assert any("Nothing is deleted in the source mailbox: the run had errors" in x for x in log)
    with tenant_context(tenant_a.tenant):
        profile.refresh_from_db()
        assert not profile.has_succeeded


def test_dropped_connection_is_retried_and_resumed(tenant_a: TenantWorld, account: Account) -> None:
    for n in range(5):
        account.append("INBOX", f"d {n}", body="x" * 3000)
    proxy = DroppingProxy(account.server.ports["imaps"], after_bytes=6000)
    try:
        profile = make_profile(tenant_a, account, port=proxy.port)
        run, log = run_profile(tenant_a, profile)
    finally:
        proxy.close()
    assert run.status == JobRun.Status.FINISHED, log
    assert proxy.dropped == 1 and proxy.connections == 2
    assert any("dropped" in line and "reconnecting" in line for line in log), log
    assert archived(tenant_a) == {"Inbox": [f"d {n}" for n in range(5)]}


def test_folder_vanishing_before_it_is_read(tenant_a: TenantWorld, account: Account) -> None:
    account.imap.create_folder("Gone")
    account.append("Gone", "lost")
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    with ImapSession(settings) as session:
        folders = session.folders(include=["Gone"], exclude=[], skip_junk_trash=True)
        assert [f.path for f in folders] == ["Gone"]
        account.imap.delete_folder("Gone")
        with pytest.raises(FolderGone):
            list(session.new_messages(folders[0], FolderState()))


def test_profile_type_cannot_change(tenant_a: TenantWorld, account: Account) -> None:
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        data = services.ProfileData(
            name=profile.name,
            type=ArchivingProfile.Type.POP3,
            host="127.0.0.1",
            address=profile.address,
            secret=profile.secret,
            mailbox=profile.mailbox,
        )
        with pytest.raises(services.ProfileError, match="type of a profile cannot change"):
            services.save_profile(data, profile=profile)
        pop_multi = services.ProfileData(
            name="pop multi", type=ArchivingProfile.Type.POP3, mode=ArchivingProfile.Mode.MULTIPLE
        )
        with pytest.raises(services.ProfileError, match="POP3 archives single mailboxes only"):
            services.save_profile(pop_multi)
        profile.refresh_from_db()
        assert profile.type == ArchivingProfile.Type.IMAP


def test_gmail_archives_all_mail_only(tenant_a: TenantWorld) -> None:
    server = Dovecot(gmail=True)
    server.start()
    try:
        user = server.add_user()
        imap = server.client(user)
        account = Account(server, user, PASSWORD, imap)
        imap.create_folder("Work")
        account.append("INBOX", "labelled inbox")
        account.append("Work", "labelled work")
        account.append("All Mail", "everything")
        account.append("Junk", "spam")
        profile = make_profile(tenant_a, account)
        run, log = run_profile(tenant_a, profile)
        imap.logout()
    finally:
        server.stop()
    assert run.status == JobRun.Status.FINISHED, log
    assert archived(tenant_a) == {"All Mail": ["everything"]}


def test_multiple_mailboxes_of_a_directory_through_a_master_user(tenant_a: TenantWorld) -> None:
    from mailvault.accounts import services as accounts
    from mailvault.accounts.secrets import Secret, create_secret
    from mailvault.archive import services as archive
    from mailvault.directory.models import DirectoryService, SyncedObject

    domain = tenant_a.manual_domain.name
    addresses = (f"ann@{domain}", f"ben@{domain}")
    server = Dovecot(users=addresses)
    server.start()
    try:
        for address in addresses:
            imap = server.client(address)
            imap.append("INBOX", f"Subject: for {address}\r\n\r\nhi\r\n".encode())
            imap.logout()
        with tenant_context(tenant_a.tenant):
            service = DirectoryService.objects.create(
                name="corp ldap", kind=DirectoryService.Kind.LDAP, ldap_host="127.0.0.1"
            )
            mailboxes = []
            for n, address in enumerate(addresses):
                user, _ = accounts.create_user(address.split("@")[0], domain)
                SyncedObject.objects.create(
                    service=service, kind=SyncedObject.Kind.USER, external_id=str(n), user=user
                )
                mailboxes.append(archive.create_mailbox(address, owner=user))
            master = create_secret("master", Secret.Kind.BASIC, username=MASTER, password=PASSWORD)
            profile = ArchivingProfile.objects.create(
                name="all of corp",
                type=ArchivingProfile.Type.IMAP,
                mode=ArchivingProfile.Mode.MULTIPLE,
                directory_service=service,
                secret=master,
                host="127.0.0.1",
                port=server.ports["imaps"],
                ca_certificate=server.ca_pem,
            )
        run, log = run_profile(tenant_a, profile)
    finally:
        server.stop()
    assert run.status == JobRun.Status.FINISHED, log
    assert any("2 mailboxes of the directory service corp ldap" in line for line in log), log
    with tenant_context(tenant_a.tenant):
        for mailbox, address in zip(mailboxes, addresses, strict=True):
            subjects = list(
                Placement.objects.filter(mailbox=mailbox).values_list("message__subject", flat=True)
            )
            assert subjects == [f"for {address}"]
        states = set(
            FolderSyncState.objects.filter(profile=profile).values_list("source_mailbox", "folder")
        )
        assert {(a, "Inbox") for a in addresses} <= states


def test_xoauth2_with_a_client_credentials_token(tenant_a: TenantWorld, tmp_path: Path) -> None:
    from mailvault.accounts.secrets import Secret, create_secret
    from sources.dovecot_server import IdentityProvider, self_signed

    address = tenant_a.mailbox.primary_address
    ca_pem = self_signed(tmp_path, "idp.test")  # the provider's certificate
    idp = IdentityProvider(tmp_path, client_id="mv-app", client_secret="s3cret", username=address)
    server = Dovecot(users=(address,), oauth2_introspection=idp.introspection_url)
    server.start()
    try:
        imap = server.client(address)
        imap.append("INBOX", b"Subject: over oauth\r\n\r\nhi\r\n")
        imap.logout()
        with tenant_context(tenant_a.tenant):
            secret = create_secret(
                "app",
                Secret.Kind.OAUTH_CLIENT,
                client_id="mv-app",
                client_secret="s3cret",
                token_endpoint=idp.token_url,
                scope="https://outlook.office365.com/.default",
            )
            profile = services.save_profile(
                services.ProfileData(
                    name="oauth",
                    type=ArchivingProfile.Type.IMAP,
                    host="127.0.0.1",
                    port=server.ports["imaps"],
                    ca_certificate=server.ca_pem + ca_pem,
                    auth_method=ArchivingProfile.Auth.XOAUTH2,
                    address=address,
                    secret=secret,
                    mailbox=tenant_a.mailbox,
                )
            )
        run, log = run_profile(tenant_a, profile)
    finally:
        server.stop()
        idp.close()
    assert run.status == JobRun.Status.FINISHED, (log, server.log())
    assert idp.grants == 1
    assert archived(tenant_a) == {"Inbox": ["over oauth"]}
