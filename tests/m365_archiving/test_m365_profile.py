"""Archiving profiles of type Microsoft 365, run as jobs against the emulator over HTTPS:
every folder archived into the user's archive mailbox byte-exact, incremental runs take
only what is new, a 410 resync stores nothing twice, and "delete in source mailbox"
deletes only verified copies."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.services import add_domain
from mailvault.archive.models import Folder, Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import execute_run
from mailvault.sources.graph import GraphClient, GraphError, GraphSettings
from mailvault.sources.models_graph import GraphFolderState
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles.services import PROCESS_TYPE
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=8, groups=2) as handle:
        yield handle


def _user_with_mailbox(m365: EmulatorHandle) -> tuple[str, str]:
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        for user in graph.items("/users", params={"$select": "id,mail,userType"}):
            if user.get("userType") != "Member" or not user.get("mail"):
                continue
            try:
                graph.get(f"/users/{user['id']}/mailboxSettings")
            except GraphError:
                continue
            return str(user["id"]), str(user["mail"]).casefold()
    raise AssertionError("no user with a mailbox")


def _profile(tenant_a: TenantWorld, m365: EmulatorHandle, **extra: object) -> ArchivingProfile:
    _user_id, address = _user_with_mailbox(m365)
    with tenant_context(tenant_a.tenant):
        add_domain(address.rsplit("@", 1)[1])
        mailbox = create_mailbox(address)
        return ArchivingProfile.objects.create(
            name="Exchange Online",
            type=ArchivingProfile.Type.M365,
            mode=ArchivingProfile.Mode.SINGLE,
            address=address,
            mailbox=mailbox,
            entra_tenant_id=m365.tenant_id,
            **extra,
        )


def _run(profile: ArchivingProfile) -> JobRun:
    with tenant_context(profile.tenant):
        run = jobs.run_now(PROCESS_TYPE, profile)
    execute_run(run.pk)
    return JobRun.unscoped.get(pk=run.pk)


def _log(run: JobRun) -> str:
    return "\n".join(JobMessage.unscoped.filter(run=run).values_list("text", flat=True))


def _source_messages(m365: EmulatorHandle, address: str) -> dict[str, bytes]:
    """id -> MIME of every message in the emulated mailbox (folders walked via Graph)."""
    from mailvault.sources.graph.mailbox import MailboxReader

    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        reader = MailboxReader(graph, address)
        found: dict[str, bytes] = {}
        for folder in reader.folders(well_known=["junkemail", "deleteditems"]):
            if folder.well_known in ("junkemail", "deleteditems"):
                continue
            for ref in reader.changes(folder.id).added:
                found[ref.id] = reader.mime(ref.id)
        return found


def test_archives_every_folder_then_only_what_is_new(tenant_a: TenantWorld, m365: EmulatorHandle):
    profile = _profile(tenant_a, m365)
    run = _run(profile)
    assert run.status == JobRun.Status.FINISHED, _log(run)
    assert re.search(
        r"folder\(s\) read with [1-9]\d* Graph requests; 0 were answered 429", _log(run)
    )
    source = _source_messages(m365, profile.address)
    assert source
    with tenant_context(tenant_a.tenant):
        mailbox = Mailbox.objects.get(pk=profile.mailbox_id)
        archived = set(
            Message.objects.filter(placements__mailbox=mailbox).values_list("sha256", flat=True)
        )
        assert {hashlib.sha256(raw).hexdigest() for raw in source.values()} <= archived
        paths = set(Folder.objects.filter(mailbox=mailbox).values_list("path", flat=True))
        assert "Inbox" in paths
        placements = Placement.objects.filter(mailbox=mailbox).count()
        assert GraphFolderState.objects.filter(profile=profile).exclude(delta_link="").exists()

    raw = b"Subject: arrived later\r\nMessage-ID: <later@example.org>\r\n\r\nnew\r\n"
    user_id, _address = _user_with_mailbox(m365)
    m365.control(
        "POST",
        f"mailboxes/{user_id}/messages",
        {"raw_base64": base64.b64encode(raw).decode(), "folder": "inbox"},
    )
    second = _run(profile)
    assert second.status == JobRun.Status.FINISHED, _log(second)
    assert "1 messages fetched" in _log(second)
    with tenant_context(tenant_a.tenant):
        assert Placement.objects.filter(mailbox=mailbox).count() == placements + 1
        new = Message.objects.get(sha256=hashlib.sha256(raw).hexdigest())
        assert new.placements.get().folder.path == "Inbox"

    m365.reset_delta()  # every delta token expired: a full read, nothing stored twice
    third = _run(profile)
    assert third.status == JobRun.Status.FINISHED, _log(third)
    with tenant_context(tenant_a.tenant):
        assert Placement.objects.filter(mailbox=mailbox).count() == placements + 1


def test_delete_in_source_only_after_a_verified_copy(tenant_a: TenantWorld, m365: EmulatorHandle):
    profile = _profile(tenant_a, m365, delete_in_source=True, include_folders="Inbox")
    before = _source_messages(m365, profile.address)
    run = _run(profile)
    assert run.status == JobRun.Status.FINISHED, _log(run)
    log = _log(run)
    after = _source_messages(m365, profile.address)
    deleted = set(before) - set(after)
    assert deleted, log
    with tenant_context(tenant_a.tenant):
        for message_id in deleted:
            sha = hashlib.sha256(before[message_id]).hexdigest()
            archived = Message.objects.get(sha256=sha)
            assert f"(archive id {archived.pk})" in log
    # Folders other than the included one keep everything.
    assert all(mid in after for mid in before if mid not in deleted)


def test_a_tenant_without_consent_fails_clearly(tenant_a: TenantWorld, m365: EmulatorHandle):
    profile = _profile(tenant_a, m365)
    m365.set_consent(False)
    try:
        run = _run(profile)
    finally:
        m365.set_consent(True)
    assert run.status == JobRun.Status.FAILED, _log(run)
    assert "AADSTS700016" in _log(run)
    assert "consent" in _log(run).lower()
    with tenant_context(tenant_a.tenant):
        assert not GraphFolderState.objects.filter(profile=profile).exists()


def test_a_single_microsoft_365_mailbox_needs_no_secret(tenant_a: TenantWorld) -> None:
    from mailvault.sources.profiles.services import ProfileData, save_profile

    with tenant_context(tenant_a.tenant):
        profile = save_profile(
            ProfileData(
                name="One mailbox",
                type=ArchivingProfile.Type.M365,
                mode=ArchivingProfile.Mode.SINGLE,
                address=tenant_a.mailbox.primary_address,
            )
        )
        assert profile.secret is None and profile.mailbox == tenant_a.mailbox
