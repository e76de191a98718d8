"""Folder synchronization against the Microsoft 365 emulator over HTTPS: a journaled
message gets its folder without being stored twice, moves are followed, folder renames
move the archive's folders, journal mailboxes are refused, and "delete after archived"
deletes only verified copies."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.services import add_domain
from mailvault.archive.filing import rename_folder
from mailvault.archive.models import Folder, Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import execute_run
from mailvault.sources.foldersync import services
from mailvault.sources.graph import GraphClient, GraphError, GraphSettings
from mailvault.sources.graph.mailbox import MailboxReader
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db
FS = FolderSynchronization


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=6, groups=2) as handle:
        yield handle


def _graph(m365: EmulatorHandle) -> GraphClient:
    return GraphClient(m365.tenant_id, GraphSettings.from_django())


def _user(m365: EmulatorHandle) -> tuple[str, str]:
    with _graph(m365) as graph:
        for user in graph.items("/users", params={"$select": "id,mail,userType"}):
            if user.get("userType") != "Member" or not user.get("mail"):
                continue
            try:
                graph.get(f"/users/{user['id']}/mailboxSettings")
            except GraphError:
                continue
            return str(user["id"]), str(user["mail"]).casefold()
    raise AssertionError("no user with a mailbox")


def _setup(tenant_a: TenantWorld, m365: EmulatorHandle, **extra: object) -> FolderSynchronization:
    _user_id, address = _user(m365)
    with tenant_context(tenant_a.tenant):
        add_domain(address.rsplit("@", 1)[1])
        create_mailbox(address)
        data = services.FolderSyncData(
            name="Mailbox folders", mode=FS.Mode.SINGLE, address=address, **extra
        )
        sync = services.save_folder_sync(data)
        sync.entra_tenant_id = m365.tenant_id
        sync.save()
        return sync


def _run(sync: FolderSynchronization) -> tuple[JobRun, str]:
    with tenant_context(sync.tenant):
        run = jobs.run_now(services.PROCESS_TYPE, sync)
    execute_run(run.pk)
    run = JobRun.unscoped.get(pk=run.pk)
    log = "\n".join(JobMessage.unscoped.filter(run=run).values_list("text", flat=True))
    return run, log


def _inbox(m365: EmulatorHandle, user_id: str) -> list[tuple[str, bytes]]:
    with _graph(m365) as graph:
        reader = MailboxReader(graph, user_id)
        inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
        return [(r.id, reader.mime(r.id)) for r in reader.changes(inbox.id).added]


def test_a_journaled_message_gets_its_folder_and_moves_are_followed(
    tenant_a: TenantWorld, m365: EmulatorHandle
):
    sync = _setup(tenant_a, m365)
    user_id, _ = _user(m365)
    (first_id, first_raw), *_ = _inbox(m365, user_id)
    sha = hashlib.sha256(first_raw).hexdigest()
    with tenant_context(tenant_a.tenant):
        mailbox = Mailbox.objects.get(pk=sync.mailbox_id)
        with Ingestor(index=False) as ingestor:  # as the journal consumer files it
            ingestor.add(
                IngestRequest(
                    raw=first_raw,
                    source=Message.Source.SMTP,
                    targets=[Target(mailbox, "")],
                    source_ref="smtp:j-test",
                )
            )
            ingestor.flush()
        journaled = Message.objects.get(sha256=sha)

    run, log = _run(sync)
    assert run.status == JobRun.Status.FINISHED, log
    with tenant_context(tenant_a.tenant):
        assert Message.objects.filter(sha256=sha).count() == 1  # not stored twice
        paths = list(
            Placement.objects.filter(mailbox=mailbox, message=journaled).values_list(
                "folder__path", flat=True
            )
        )
        assert paths == ["Inbox"]
        archived = Placement.objects.filter(mailbox=mailbox).count()
        assert archived > 1  # the rest of the mailbox arrived in its folders too
        assert Folder.objects.filter(mailbox=mailbox, path="Sent Items").exists()

    with _graph(m365) as graph:
        graph.request(
            "POST",
            f"/users/{user_id}/messages/{first_id}/move",
            json={"destinationId": "deleteditems"},
            headers={"Prefer": 'IdType="ImmutableId"'},
        )
    run, log = _run(sync)
    assert run.status == JobRun.Status.FINISHED, log
    with tenant_context(tenant_a.tenant):
        paths = list(
            Placement.objects.filter(mailbox=mailbox, message=journaled).values_list(
                "folder__path", flat=True
            )
        )
        assert paths == ["Deleted Items"]
        assert Placement.objects.filter(mailbox=mailbox).count() == archived


def test_renaming_a_folder_moves_its_subtree(tenant_a: TenantWorld) -> None:
    from factories import add_message

    with tenant_context(tenant_a.tenant):
        mailbox = tenant_a.mailbox
        one = add_message(mailbox, "one", "Projects/2025")
        two = add_message(mailbox, "two", "Projects")
        moved = rename_folder(mailbox, "Projects", "Archive/Projects")
        assert moved == {one.pk, two.pk}
        assert one.placements.get(mailbox=mailbox).folder.path == "Archive/Projects/2025"
        assert two.placements.get(mailbox=mailbox).folder.path == "Archive/Projects"
        assert not Folder.objects.filter(mailbox=mailbox, path__startswith="Projects").exists()


def test_journal_mailboxes_are_refused(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        create_mailbox(f"journal@{tenant_a.manual_domain.name}", kind=Mailbox.Kind.JOURNAL)
        data = services.FolderSyncData(
            name="Journal", mode=FS.Mode.SINGLE, address=f"journal@{tenant_a.manual_domain.name}"
        )
        with pytest.raises(services.FolderSyncError, match="journal mailboxes"):
            services.save_folder_sync(data)


def test_delete_after_archived_deletes_verified_copies_only(
    tenant_a: TenantWorld, m365: EmulatorHandle
):
    sync = _setup(tenant_a, m365, delete_in_mailbox=FS.Delete.ARCHIVED)
    user_id, _ = _user(m365)
    before = dict(_inbox(m365, user_id))
    assert len(before) >= 2
    run, log = _run(sync)
    assert run.status == JobRun.Status.FINISHED, log
    after = dict(_inbox(m365, user_id))
    deleted = set(before) - set(after)
    assert deleted == set(before), log  # every inbox message was archived, so all may go
    with tenant_context(tenant_a.tenant):
        for message_id in deleted:
            archived = Message.objects.get(sha256=hashlib.sha256(before[message_id]).hexdigest())
            assert f"(archive id {archived.pk})" in log


def test_the_page_adds_runs_and_deletes(tenant_a: TenantWorld) -> None:
    from django.urls import reverse

    from factories import client_for

    admin = client_for(tenant_a.owner)
    address = tenant_a.mailbox.primary_address
    response = admin.post(
        reverse("adminaccess:folder_sync_create"),
        {
            "name": "Everyone's folders",
            "type": FS.Type.M365,
            "mode": FS.Mode.SINGLE,
            "address": address,
            "delete_in_mailbox": FS.Delete.OLDER,
            "delete_older_than_days": "",
        },
    )
    assert response.status_code == 200  # refused: "older than" needs its days
    assert "after how many days" in response.content.decode()
    response = admin.post(
        reverse("adminaccess:folder_sync_create"),
        {
            "name": "Everyone's folders",
            "type": FS.Type.M365,
            "mode": FS.Mode.SINGLE,
            "address": address,
            "delete_in_mailbox": FS.Delete.NEVER,
        },
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        sync = FolderSynchronization.objects.get(name="Everyone's folders")
        assert sync.mailbox == tenant_a.mailbox and sync.delete_in_mailbox == FS.Delete.NEVER
    listing = admin.get(reverse("adminaccess:folder_syncs")).content.decode()
    assert "Everyone&#x27;s folders" in listing and "Never delete" in listing
    # The type is fixed after creation.
    admin.post(
        reverse("adminaccess:folder_sync_edit", args=[sync.pk]),
        {
            "name": "Renamed",
            "type": FS.Type.IMAP,
            "mode": FS.Mode.SINGLE,
            "address": address,
            "delete_in_mailbox": FS.Delete.NEVER,
        },
    )
    with tenant_context(tenant_a.tenant):
        sync.refresh_from_db()
        assert sync.type == FS.Type.M365 and sync.name == "Renamed"
    run = admin.post(reverse("adminaccess:folder_sync_run_now", args=[sync.pk]))
    assert run.status_code == 302 and "/process-log/" in run["Location"]
    with tenant_context(tenant_a.tenant):
        JobRun.objects.update(status=JobRun.Status.FINISHED)
    admin.post(reverse("adminaccess:folder_sync_delete", args=[sync.pk]))
    with tenant_context(tenant_a.tenant):
        assert not FolderSynchronization.objects.filter(pk=sync.pk).exists()
