"""Microsoft 365 archiving profiles and folder synchronizations (both with deletion in the
source switched on) when things go wrong: a wrong client secret, an unreachable server,
a mailbox that vanished (its user deleted, or its licence and so its Exchange mailbox
removed) each end with a clear process-log message and delete nothing in the source; a
message that could not be fetched is archived by the next run; and "delete after
archived" wants the copy filed in that user's own archive mailbox."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test.utils import override_settings

from directory.emulator import emulator
from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.services import add_domain
from mailvault.archive.models import Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun, Severity
from mailvault.jobs.runner import execute_run
from mailvault.sources.foldersync import services as foldersync
from mailvault.sources.models_foldersync import FolderSynchronization, SyncedFolder
from mailvault.sources.models_graph import GraphFolderState
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles.services import PROCESS_TYPE as PROFILE_TYPE
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db
KINDS = ("profile", "folder_sync")


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=6, groups=2) as handle:
        yield handle


def _user(m365: EmulatorHandle) -> tuple[str, str]:
    assert m365.emulator is not None
    users = m365.emulator.tenant.users.values()
    found = sorted(
        (str(u.mail).casefold(), u.id)
        for u in users
        if u.has_mailbox and u.user_type == "Member" and u.mail and not u.is_admin
    )
    address, user_id = found[0]
    return user_id, address


def _configure(
    tenant_a: TenantWorld, m365: EmulatorHandle, kind: str
) -> tuple[str, ArchivingProfile | FolderSynchronization]:
    _user_id, address = _user(m365)
    with tenant_context(tenant_a.tenant):
        add_domain(address.rsplit("@", 1)[1])
        mailbox = create_mailbox(address)
        if kind == "profile":
            profile = ArchivingProfile.objects.create(
                name="Exchange Online",
                type=ArchivingProfile.Type.M365,
                mode=ArchivingProfile.Mode.SINGLE,
                address=address,
                mailbox=mailbox,
                entra_tenant_id=m365.tenant_id,
                delete_in_source=True,
            )
            return PROFILE_TYPE, profile
        sync = foldersync.save_folder_sync(
            foldersync.FolderSyncData(
                name="Mailbox folders",
                mode=FolderSynchronization.Mode.SINGLE,
                address=address,
                delete_in_mailbox=FolderSynchronization.Delete.ARCHIVED,
            )
        )
        sync.entra_tenant_id = m365.tenant_id
        sync.save()
        return foldersync.PROCESS_TYPE, sync


def _run(process_type: str, config: Any) -> tuple[JobRun, list[tuple[int, str]]]:
    with tenant_context(config.tenant):
        run = jobs.run_now(process_type, config)
    execute_run(run.pk)
    run = JobRun.unscoped.get(pk=run.pk)
    messages = list(
        JobMessage.unscoped.filter(run=run).order_by("pk").values_list("severity", "text")
    )
    return run, messages


def _first_error(messages: list[tuple[int, str]]) -> str:
    """What the administrator reads first: the job's own words (the runner adds no
    traceback to a failure the job explained)."""
    return next(text for severity, text in messages if severity >= Severity.ERROR)


def _nothing_deleted(m365: EmulatorHandle, messages: list[tuple[int, str]]) -> None:
    assert m365.deletions() == []
    assert not any(text.startswith("Deleted in the") for _s, text in messages)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: refused


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_client_secret_fails_clearly_and_deletes_nothing(
    tenant_a: TenantWorld, m365: EmulatorHandle, kind: str
) -> None:
    process_type, config = _configure(tenant_a, m365, kind)
    with override_settings(MAILVAULT_M365_CLIENT_SECRET="not-the-secret"):
        run, messages = _run(process_type, config)
    assert run.status == JobRun.Status.FAILED, messages
    errors = _first_error(messages)
    assert "AADSTS7000215" in errors and "client secret is wrong" in errors, errors
    assert not any("Traceback" in text for _s, text in messages), messages
    _nothing_deleted(m365, messages)
    with tenant_context(tenant_a.tenant):
        assert not Placement.objects.filter(mailbox=config.mailbox).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_server_fails_clearly_and_deletes_nothing(
    tenant_a: TenantWorld, m365: EmulatorHandle, kind: str
) -> None:
    process_type, config = _configure(tenant_a, m365, kind)
    nowhere = f"https://127.0.0.1:{_closed_port()}"
    with override_settings(
        MAILVAULT_M365_AUTHORITY_BASE=nowhere, MAILVAULT_M365_GRAPH_BASE=nowhere
    ):
        run, messages = _run(process_type, config)
    assert run.status == JobRun.Status.FAILED, messages
    errors = _first_error(messages)
    assert f"Cannot reach {nowhere}" in errors, errors
    assert not any("Traceback" in text for _s, text in messages), messages
    _nothing_deleted(m365, messages)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["user deleted", "licence removed"])
def test_a_vanished_mailbox_is_reported_and_nothing_is_deleted(
    tenant_a: TenantWorld, m365: EmulatorHandle, kind: str, how: str
) -> None:
    process_type, config = _configure(tenant_a, m365, kind)
    user_id, address = _user(m365)
    if how == "user deleted":
        m365.control("DELETE", f"users/{user_id}")
    else:
        m365.set_faults(no_mailbox=[user_id])  # Graph: MailboxNotEnabledForRESTAPI
    run, messages = _run(process_type, config)
    assert run.status in (JobRun.Status.FINISHED, JobRun.Status.FAILED), messages
    errors = _first_error(messages)
    assert address in errors, messages  # the process log names the mailbox …
    assert "404" in errors or "not" in errors.lower(), errors  # … and why
    assert not any("Traceback" in text for _s, text in messages), messages
    _nothing_deleted(m365, messages)
    with tenant_context(tenant_a.tenant):
        assert not GraphFolderState.objects.exclude(delta_link="").exists()
        assert not SyncedFolder.objects.exclude(delta_link="").exists()
        model = ArchivingProfile if kind == "profile" else FolderSynchronization
        assert model.objects.get(pk=config.pk).last_success_at is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_that_could_not_be_fetched_is_archived_by_the_next_run(
    tenant_a: TenantWorld, m365: EmulatorHandle, kind: str
) -> None:
    """Its folder's delta link must not move past it (no 410 needed to get it later)."""
    process_type, config = _configure(tenant_a, m365, kind)
    user_id, _address = _user(m365)
    raw = b"Subject: stubborn\r\nMessage-ID: <stubborn@example.org>\r\n\r\nbody\r\n"
    made = m365.control(
        "POST",
        f"mailboxes/{user_id}/messages",
        {"raw_base64": base64.b64encode(raw).decode(), "folder": "inbox"},
    )
    # Every request for its MIME answers 503 until the client gives up on it.
    m365.set_faults(path_filter=made["immutableId"][:40], unavailable_next=1000, retry_after="0")
    with override_settings(MAILVAULT_M365_MAX_RETRIES=2):
        first, messages = _run(process_type, config)
    assert first.status == JobRun.Status.FINISHED, messages
    assert "Service unavailable" in _first_error(messages) or "503" in _first_error(messages)
    _nothing_deleted(m365, messages)  # a run with errors deletes nothing
    sha = hashlib.sha256(raw).hexdigest()
    with tenant_context(tenant_a.tenant):
        assert not Message.objects.filter(sha256=sha).exists()
        others = Placement.objects.filter(mailbox=config.mailbox).count()
        assert others > 0  # the rest of the mailbox was archived
    m365.reset_faults()
    second, messages = _run(process_type, config)
    assert second.status == JobRun.Status.FINISHED, messages
    with tenant_context(tenant_a.tenant):
        archived = Message.objects.get(sha256=sha)
        assert archived.placements.get().folder.path == "Inbox"
        assert Placement.objects.filter(mailbox=config.mailbox).count() == others + 1


def test_delete_after_archived_needs_the_copy_filed_in_that_users_mailbox(
    tenant_a: TenantWorld, m365: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mail that arrived after the synchronization read the folders, whose bytes the
    archive holds for another mailbox only, stays in the source."""
    from mailvault.ingestion.pipeline import Ingestor
    from mailvault.ingestion.types import IngestRequest, Target
    from mailvault.sources.foldersync import job

    process_type, config = _configure(tenant_a, m365, "folder_sync")
    user_id, _address = _user(m365)
    elsewhere = b"Subject: copied\r\nMessage-ID: <copied@example.org>\r\n\r\nsame bytes\r\n"
    here = b"Subject: filed\r\nMessage-ID: <filed@example.org>\r\n\r\nfiled here\r\n"
    with tenant_context(tenant_a.tenant), Ingestor(index=False) as ingestor:
        for raw, mailbox in ((elsewhere, tenant_a.mailbox), (here, config.mailbox)):
            ingestor.add(IngestRequest(raw=raw, source="graph", targets=[Target(mailbox, "Inbox")]))
        ingestor.flush()
    for raw in (elsewhere, here):
        m365.control(
            "POST",
            f"mailboxes/{user_id}/messages",
            {"raw_base64": base64.b64encode(raw).decode(), "folder": "inbox"},
        )
    # Both arrive after the synchronization read the folders: it sees nothing new.
    monkeypatch.setattr(job._MailboxSync, "run", lambda self: None)
    run, messages = _run(process_type, config)
    assert run.status == JobRun.Status.FINISHED, messages
    deleted = {entry["sha256"] for entry in m365.deletions()}
    assert deleted == {hashlib.sha256(here).hexdigest()}, messages
    assert any("is not filed in this mailbox yet" in text for _s, text in messages), messages
