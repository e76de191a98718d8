"""IMAP folder synchronization against a real Dovecot: folders and messages mirrored,
journaled copies placed not stored twice, moves and renames followed, UIDVALIDITY changes
re-read, "delete after archived" only for verified unflagged unheld copies, clear errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Callable

import pytest

from factories import TenantWorld, client_for
from mailvault.archive.models import Folder, Message, Placement
from mailvault.compliance import holds
from mailvault.compliance.models_holds import LegalHold
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.models import JobRun
from mailvault.sources.models_foldersync import (
    FolderSynchronization,
    ImapSyncedFolder,
    ImapSyncedMessage,
)
from mailvault.tenancy.context import tenant_context
from sources.chaos_proxy import ChaosProxy, Fault, random_faults
from sources.imap.chaos_checks import (
    FOLDERS,
    HOLD_WORD,
    Filled,
    fill,
    message,
    not_exactly_once,
    sha,
    snapshot,
    unverified_deletions,
)
from sources.imap.folder_sync_helpers import FS, archive_view, archived, make_sync, run_sync
from sources.profile_helpers import Account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailvault.sources.foldersync.imap.RETRY_BACKOFF_S", 0.01)


def server_subjects(account: Account, folder: str = "INBOX") -> list[str]:
    account.imap.select_folder(folder, readonly=True)
    uids = account.imap.search("ALL")
    data = account.imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    account.imap.unselect_folder()
    return sorted(
        bytes(d[b"BODY[HEADER.FIELDS (SUBJECT)]"]).decode().strip().removeprefix("Subject: ")
        for d in data.values()
    )


def uid_of(account: Account, folder: str, subject: str) -> int:
    account.imap.select_folder(folder)
    uids = account.imap.search(["SUBJECT", subject])
    assert len(uids) == 1, (folder, subject, uids)
    return int(uids[0])


def message_count(world: TenantWorld, subject: str) -> int:
    with tenant_context(world.tenant):
        return Message.objects.filter(subject=subject).count()


def test_initial_sync_mirrors_folders_then_reads_only_what_is_new(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.imap.create_folder("Work")
    account.imap.create_folder("Work/Old")
    account.append("INBOX", "hello")
    account.append("INBOX", "second")
    account.append("Work", "project")
    account.append("Work/Old", "archive me")
    account.append("Junk", "spam")
    account.append("Trash", "gone")
    sync = make_sync(tenant_a, account)

    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert archived(tenant_a) == {
        "Inbox": ["hello", "second"],
        "Work": ["project"],
        "Work/Old": ["archive me"],
    }, log
    assert "4 messages archived that the archive lacked" in log
    with tenant_context(tenant_a.tenant):
        # Web Access shows the mailbox's folder tree: Work/Old sits under Work.
        old = Folder.objects.get(mailbox=tenant_a.mailbox, path="Work/Old")
        assert old.parent is not None and old.parent.path == "Work"
        state = ImapSyncedFolder.objects.get(sync=sync, path="Inbox")
        assert state.uidvalidity > 0 and state.exists == 2
        uid = uid_of(account, "INBOX", "hello")
        ref = f"imap:{tenant_a.mailbox.primary_address}:Inbox:{state.uidvalidity}:{uid}"
        assert Placement.objects.get(source_ref=ref).message.subject == "hello"
        sync.refresh_from_db()
        assert sync.last_success_at is not None

    run, log = run_sync(sync)  # nothing new: every folder skipped by its SELECT answer
    assert "0 messages archived" in log and "4 folders unchanged" in log, log

    account.append("Work", "later")
    run, log = run_sync(sync)
    assert "1 messages archived" in log and "3 folders unchanged" in log, log
    assert archived(tenant_a)["Work"] == ["later", "project"]


def test_a_journaled_message_is_placed_not_stored_twice(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.imap.create_folder("Customers")
    raw = account.append("Customers", "journaled first")
    with tenant_context(tenant_a.tenant), Ingestor(index=False) as ingestor:
        ingestor.add(  # as the journal consumer files it: at the mailbox's root
            IngestRequest(
                raw=raw,
                source=Message.Source.SMTP,
                targets=[Target(tenant_a.mailbox, "")],
                source_ref="smtp:j-1",
            )
        )
        ingestor.flush()
    sync = make_sync(tenant_a, account)

    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert "0 messages archived" in log and "1 filed into their folders" in log, log
    with tenant_context(tenant_a.tenant):
        message = Message.objects.get(sha256=hashlib.sha256(raw).hexdigest())
        assert message.source == Message.Source.SMTP  # the journaled copy, not a new one
        paths = list(
            Placement.objects.filter(message=message, mailbox=tenant_a.mailbox).values_list(
                "folder__path", flat=True
            )
        )
    assert paths == ["Customers"]  # the provisional root placement gave way


def test_moves_on_the_server_are_followed(tenant_a: TenantWorld, account: Account) -> None:
    account.imap.create_folder("Work")
    account.imap.create_folder("Lists")
    for subject in ("stay", "move me", "copy expunge"):
        account.append("INBOX", subject)
    sync = make_sync(tenant_a, account)
    run_sync(sync)
    before = {s: message_count(tenant_a, s) for s in ("stay", "move me", "copy expunge")}
    assert before == {"stay": 1, "move me": 1, "copy expunge": 1}

    account.imap.select_folder("INBOX")
    account.imap.move([uid_of(account, "INBOX", "move me")], "Work")  # IMAP MOVE
    uid = uid_of(account, "INBOX", "copy expunge")
    account.imap.copy([uid], "Lists")  # COPY + STORE \Deleted + EXPUNGE
    account.imap.add_flags([uid], [b"\\Deleted"])
    account.imap.expunge()
    account.imap.unselect_folder()

    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert "2 moved" in log and "0 messages archived" in log, log
    assert archived(tenant_a) == {"Inbox": ["stay"], "Work": ["move me"], "Lists": ["copy expunge"]}
    assert {s: message_count(tenant_a, s) for s in before} == before  # nothing stored twice


def test_a_folder_rename_is_followed(tenant_a: TenantWorld, account: Account) -> None:
    account.imap.create_folder("Projects")
    account.imap.create_folder("Projects/Alpha")
    account.append("Projects", "plan")
    account.append("Projects", "budget")
    account.append("Projects/Alpha", "alpha notes")
    sync = make_sync(tenant_a, account)
    run_sync(sync)

    account.imap.rename_folder("Projects", "Clients")
    account.append("Clients", "after the rename")
    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert "The folder Projects was renamed to Clients" in log, log
    assert "1 messages archived" in log and "1 folders renamed" in log, log
    assert archived(tenant_a) == {
        "Clients": ["after the rename", "budget", "plan"],
        "Clients/Alpha": ["alpha notes"],
    }
    with tenant_context(tenant_a.tenant):
        assert not Folder.objects.filter(mailbox=tenant_a.mailbox, path__startswith="Projects")
        assert set(ImapSyncedFolder.objects.filter(sync=sync).values_list("path", flat=True)) == {
            "Inbox",
            "Sent",
            "Clients",
            "Clients/Alpha",
        }
    assert message_count(tenant_a, "plan") == 1


def test_a_uidvalidity_change_rereads_the_folder_without_duplicates(
    tenant_a: TenantWorld, account: Account
) -> None:
    for n in range(3):
        account.append("INBOX", f"m {n}")
    sync = make_sync(tenant_a, account)
    run_sync(sync)
    account.server.doveadm("mailbox", "update", "-u", account.user, "--uid-validity", "77", "INBOX")
    account.append("INBOX", "m 3")

    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert "UIDVALIDITY changed" in log and "1 messages archived" in log, log
    assert archived(tenant_a) == {"Inbox": ["m 0", "m 1", "m 2", "m 3"]}
    with tenant_context(tenant_a.tenant):
        assert Message.objects.filter(subject__startswith="m ").count() == 4
        rows = ImapSyncedMessage.objects.filter(folder__sync=sync, folder__path="Inbox")
        assert sorted(rows.values_list("uidvalidity", flat=True)) == [77] * 4
        refs = Placement.objects.filter(
            mailbox=tenant_a.mailbox, folder__path="Inbox", message__subject__startswith="m "
        ).values_list("source_ref", flat=True)
        assert len(refs) == 4 and all(":Inbox:77:" in r for r in refs), list(refs)


def test_delete_after_archived_deletes_only_verified_unflagged_unheld_copies(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.imap.create_folder("Work")
    account.append("INBOX", "plain one")
    account.append("INBOX", "keep flagged", flags=(b"\\Flagged",))
    account.append("INBOX", "held one", body="about the zanzibar case")
    account.append("Work", "plain work")
    with tenant_context(tenant_a.tenant):
        holds.create_hold(
            name="case",
            kind=LegalHold.Kind.QUERY,
            reason="litigation",
            actor=None,
            query="zanzibar",
        )
    sync = make_sync(tenant_a, account, delete_in_mailbox=FS.Delete.ARCHIVED)

    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert server_subjects(account) == ["held one", "keep flagged"]
    assert server_subjects(account, "Work") == []
    assert "kept 1 flagged, 0 unverified, 1 on hold" in log, log
    with tenant_context(tenant_a.tenant):
        ids = {m.subject: m.pk for m in Message.objects.filter(subject__startswith="plain")}
    logged = sorted(
        int(n) for n in re.findall(r"Deleted in the mailbox .*\(archive id (\d+)\)", log)
    )
    assert logged == sorted(ids.values()), log
    # The archive keeps every message in its folder.
    assert archived(tenant_a) == {
        "Inbox": ["held one", "keep flagged", "plain one"],
        "Work": ["plain work"],
    }
    run, log = run_sync(sync)  # the deleted ones are not missed, nothing more goes
    assert run.status == JobRun.Status.FINISHED and "0 messages archived" in log, log
    assert server_subjects(account) == ["held one", "keep flagged"]


def test_delete_older_than_n_days_keeps_recent_mail(
    tenant_a: TenantWorld, account: Account
) -> None:
    old = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    account.imap.append(
        "INBOX", b"Subject: old\r\nMessage-ID: <old@x>\r\n\r\nold\r\n", msg_time=old
    )
    account.append("INBOX", "recent")
    sync = make_sync(
        tenant_a, account, delete_in_mailbox=FS.Delete.OLDER, delete_older_than_days=30
    )
    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert server_subjects(account) == ["recent"], log
    assert archived(tenant_a) == {"Inbox": ["old", "recent"]}


def test_a_copy_that_does_not_verify_is_not_deleted(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailvault.archive.store.blobstore import BlobStore

    account.append("INBOX", "tampered")
    sync = make_sync(tenant_a, account, delete_in_mailbox=FS.Delete.ARCHIVED)
    real_get = BlobStore.get
    monkeypatch.setattr(BlobStore, "get", lambda self, sha: real_get(self, sha) + b"x")
    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FINISHED, log
    assert "kept 0 flagged, 1 unverified, 0 on hold" in log, log
    assert server_subjects(account) == ["tampered"]


def test_wrong_password_or_no_server_is_a_clear_error_and_nothing_is_deleted(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.append("INBOX", "precious")
    sync = make_sync(tenant_a, account, password="wrong", delete_in_mailbox=FS.Delete.ARCHIVED)
    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FAILED, log
    assert f"Sign-in to the IMAP server 127.0.0.1:{account.server.ports['imaps']}" in log, log
    assert "Check the user name and password" in log
    assert server_subjects(account) == ["precious"]
    assert archived(tenant_a) == {}

    from sources.dovecot_server import free_port

    port = free_port()  # nothing listens there
    with tenant_context(tenant_a.tenant):
        FolderSynchronization.objects.filter(pk=sync.pk).update(port=port)
        sync.refresh_from_db()
    run, log = run_sync(sync)
    assert run.status == JobRun.Status.FAILED, log
    assert f"Cannot connect to the IMAP server 127.0.0.1:{port}" in log, log
    assert server_subjects(account) == ["precious"]


def test_a_folder_that_vanishes_during_the_run_is_an_error_and_nothing_is_deleted(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailvault.sources.imap.sync import ImapSession

    account.imap.create_folder("Doomed")
    account.append("INBOX", "inbox mail")
    account.append("Doomed", "doomed mail")
    sync = make_sync(tenant_a, account, delete_in_mailbox=FS.Delete.ARCHIVED)
    real_folders = ImapSession.folders

    def listing_then_delete(self: ImapSession, **kwargs: object) -> object:
        listed = real_folders(self, **kwargs)  # type: ignore[arg-type]
        account.imap.delete_folder("Doomed")  # gone between LIST and SELECT
        return listed

    monkeypatch.setattr(ImapSession, "folders", listing_then_delete)
    _run, log = run_sync(sync)
    assert "Doomed: The folder Doomed no longer exists" in log, log
    assert "Nothing is deleted in the mailbox: the run had errors" in log, log
    assert server_subjects(account) == ["inbox mail"]


def test_the_admin_page_creates_and_edits_an_imap_sync(
    tenant_a: TenantWorld, account: Account
) -> None:
    from django.urls import reverse

    from mailvault.accounts.secrets import Secret, create_secret

    with tenant_context(tenant_a.tenant):
        secret = create_secret("imap cred", Secret.Kind.BASIC, username="u", password="p")
    admin = client_for(tenant_a.owner)
    form = {
        "name": "Mail server folders",
        "type": FS.Type.IMAP,
        "mode": FS.Mode.SINGLE,
        "address": tenant_a.mailbox.primary_address,
        "security": "tls",
        "auth_method": "password",
        "tls_verify": "on",
        "delete_in_mailbox": FS.Delete.NEVER,
        "skip_junk_trash": "on",
    }
    page = admin.get(reverse("adminaccess:folder_sync_create")).content.decode()
    assert 'name="host"' in page and 'name="secret"' in page
    response = admin.post(reverse("adminaccess:folder_sync_create"), {**form, "secret": secret.pk})
    assert response.status_code == 200 and "Enter the IMAP server" in response.content.decode()
    response = admin.post(reverse("adminaccess:folder_sync_create"), {**form, "host": "imap.x"})
    assert "Choose the secret" in response.content.decode()
    response = admin.post(
        reverse("adminaccess:folder_sync_create"),
        {**form, "host": "imap.example.com", "port": "1993", "secret": secret.pk},
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        sync = FolderSynchronization.objects.get(name="Mail server folders")
        assert (sync.host, sync.port, sync.secret_id, sync.mode) == (
            "imap.example.com",
            1993,
            secret.pk,
            FS.Mode.SINGLE,
        )
    listing = admin.get(reverse("adminaccess:folder_syncs")).content.decode()
    assert "Mail server folders" in listing and "(imap.example.com)" in listing
    edit = reverse("adminaccess:folder_sync_edit", args=[sync.pk])
    assert 'value="imap.example.com"' in admin.get(edit).content.decode()
    response = admin.post(
        edit, {**form, "host": "imap2.example.com", "secret": secret.pk, "tls_verify": ""}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        sync.refresh_from_db()
        assert sync.host == "imap2.example.com" and sync.tls_verify is False


# --- chaos -------------------------------------------------------------------------------


class SyncChaos:
    """The folder sync through a proxy that drops connections; after every run no message
    may be gone from the source without a verified archived copy in its folder."""

    def __init__(self, world: TenantWorld, account: Account, filled: Filled) -> None:
        self.world, self.account, self.filled = world, account, filled
        self.proxy = ChaosProxy(account.server.ports["imap"])
        self.sync = make_sync(
            world,
            account,
            port=self.proxy.port,
            security="none",
            delete_in_mailbox=FS.Delete.ARCHIVED,
        )
        self.ever: set[tuple[str, str]] = set()
        self.arrivals = 0
        self.look()

    def look(self) -> Counter[tuple[str, str]]:
        now = snapshot(self.account.server, self.account.user)
        self.ever |= set(now)
        return now

    def new_mail(self) -> None:
        for folder in FOLDERS:
            for _ in range(2):
                self.arrivals += 1
                self.account.imap.append(
                    folder, message(self.account.user, f"arrival {self.arrivals}", 4000)
                )
        self.look()

    def change_uidvalidity(self, folder: str, value: int) -> None:
        self.account.server.doveadm(
            "mailbox", "update", "-u", self.account.user, "--uid-validity", str(value), folder
        )

    def run(self, plan: Callable[[int], Fault | None] | None = None) -> tuple[JobRun, str]:
        self.proxy.plan = plan or (lambda number: None)
        self.proxy.connections = 0
        run, log = run_sync(self.sync)
        now = self.look()
        problems = unverified_deletions(self.ever, now, archive_view(self.world))
        assert not problems, "\n".join([*problems, log, *self.proxy.events])
        for folder, raw in (self.filled.flagged, self.filled.held):
            assert now[(folder, sha(raw))] == 1, (folder, log)
        return run, log


def scripted(*faults: Fault | None) -> Callable[[int], Fault | None]:
    return lambda number: faults[number - 1] if number <= len(faults) else None


@pytest.mark.single_db
def test_folder_sync_with_delete_survives_drops_and_uidvalidity_changes(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailvault.sources.foldersync.imap.BATCH_SIZE", 3)  # many FETCHes
    filled = fill(account.imap, account.user)
    with tenant_context(tenant_a.tenant):
        holds.create_hold(
            name="case", kind=LegalHold.Kind.QUERY, reason="litigation", actor=None, query=HOLD_WORD
        )
    chaos = SyncChaos(tenant_a, account, filled)
    proxy = chaos.proxy
    try:
        # 1. Drops mid-FETCH; Lists gets a new UIDVALIDITY while it is being read.
        examined: list[bytes] = []
        changed: list[int] = []

        def uidvalidity_mid_fetch(line: bytes) -> None:
            if b"EXAMINE" in line or b"SELECT" in line:
                examined.append(line)
            elif b"UID FETCH 4" in line and examined and b'"Lists"' in examined[-1] and not changed:
                changed.append(4242)
                chaos.change_uidvalidity("Lists", 4242)

        proxy.hook(b"", uidvalidity_mid_fetch, times=10**9)
        _run, log = chaos.run(
            scripted(Fault.cut(20_000), Fault.on(b"UID FETCH"), Fault.cut(70_000))
        )
        assert changed == [4242], proxy.events
        assert "reconnecting" in log and "UIDVALIDITY changed" in log, log

        # 2. New mail; drops in the deletion (before STORE reaches the server, and after
        # EXPUNGE ran with its answer lost); INBOX gets a new UIDVALIDITY at the first
        # STORE, after its candidates were checked.
        chaos.new_mail()
        proxy.hook(b"UID STORE", lambda line: chaos.change_uidvalidity("INBOX", 5151))
        _run, log = chaos.run(
            scripted(Fault.on(b"UID STORE"), Fault.on(b"UID EXPUNGE", executed=True))
        )

        # 3. Seeded random drops of every kind, with new mail.
        for seed in (1, 2):
            chaos.new_mail()
            chaos.run(
                random_faults(
                    seed,
                    probability=0.6,
                    byte_range=(2_000, 60_000),
                    patterns=(b"UID FETCH", b"UID STORE", b"UID EXPUNGE", b"EXAMINE"),
                    limit=5,
                )
            )

        # 4. The network heals: runs until one ends clean (a run after drops may have
        # kept messages it could not verify).
        for _ in range(3):
            run, log = chaos.run()
            if ", 0 failed." in log and "Nothing is deleted" not in log:
                break
        assert run.status == JobRun.Status.FINISHED, log
        now = chaos.look()
        archive = archive_view(tenant_a)
        assert not_exactly_once(chaos.ever, archive) == [], log
        assert set(now) == {
            (filled.flagged[0], sha(filled.flagged[1])),
            (filled.held[0], sha(filled.held[1])),
        }, log
    finally:
        proxy.close()
