"""The Microsoft 365 / Entra ID setup wizard against the Microsoft 365 emulator (HTTPS):
every step makes what the guide makes by hand with the wizard's defaults, a second run
makes nothing twice, and a refused consent leaves nothing half-done."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from directory.emulator import emulator
from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.models import Group, GroupRole
from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox
from mailvault.directory import services as directory
from mailvault.directory.models import DirectoryService
from mailvault.jobs.models import JobRun, Schedule
from mailvault.jobs.runner import execute_run
from mailvault.sources.foldersync import services as foldersync
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services as profiles
from mailvault.tenancy.context import tenant_context
from mailvault.web import wizard
from mailvault.web.views.admin_directory import CONSENT_KEY

pytestmark = pytest.mark.django_db

MODELS = (DirectoryService, Schedule, JobRun, Mailbox, JournalEndpoint, ArchivingProfile)


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=6, groups=2) as handle:
        yield handle


def counts() -> dict[str, int]:
    found = {model.__name__: model.objects.count() for model in MODELS}
    found["FolderSynchronization"] = FolderSynchronization.objects.count()
    found["GroupRole"] = GroupRole.objects.count()
    return found


def run_all(now: datetime, group: Group | None, tid: str) -> list[wizard.StepResult]:
    results = [
        wizard.connect_tenant(tid, now=now),
        wizard.setup_journal(),
        wizard.setup_archiving(now + timedelta(minutes=5), now=now),
        wizard.setup_folder_sync(now=now),
    ]
    if group is not None:
        results.append(wizard.grant_reader(group))
    return results


def test_every_step_with_its_defaults_then_a_second_run_makes_nothing_twice(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    with tenant_context(tenant_a.tenant):
        assert wizard.state().next_step == "connect"

        # Step 1: the directory service of the consented tenant, hourly, first run queued.
        first = wizard.connect_tenant(m365.tenant_id, now=now, triggered_by="admin")
        service = DirectoryService.objects.get()
        assert (service.name, service.kind) == (wizard.DIRECTORY_NAME, "entra")
        assert service.entra_tenant_id == m365.tenant_id
        assert service.enabled_only and service.mailbox_only and service.remove_missing
        schedule = Schedule.objects.get(process_type=directory.PROCESS_TYPE)
        assert schedule.config_id == str(service.pk)
        assert (schedule.kind, schedule.interval_minutes) == ("every_n_minutes", 60)
        assert schedule.enabled
        run = JobRun.objects.get(process_type=directory.PROCESS_TYPE)
        assert run.status == JobRun.Status.QUEUED and run.triggered_by == "admin"
        assert len(first.created) == 3 and not first.reused
        assert execute_run(run.pk) == JobRun.Status.FINISHED
        synced = Group.objects.filter(source=Group.Source.DIRECTORY).order_by("name").first()
        assert synced is not None, "the first synchronization brought no group"

        # Step 2: a journal mailbox in the tenant's domain and the endpoint filing into it.
        wizard.setup_journal()
        endpoint = JournalEndpoint.objects.select_related("mailbox").get()
        assert endpoint.name == wizard.ENDPOINT_NAME and endpoint.enabled
        assert endpoint.mailbox.kind == Mailbox.Kind.JOURNAL
        assert endpoint.mailbox.primary_address == f"journal@{tenant_a.tenant.default_domain}"
        assert endpoint.smtp_address.startswith(endpoint.local_part + "@")

        # Step 3: the Microsoft 365 profile for the directory's mailboxes, run once.
        run_at = now + timedelta(minutes=7)
        wizard.setup_archiving(run_at, now=now)
        profile = ArchivingProfile.objects.get()
        assert (profile.name, profile.type, profile.mode) == (
            wizard.PROFILE_NAME,
            ArchivingProfile.Type.M365,
            ArchivingProfile.Mode.MULTIPLE,
        )
        assert profile.directory_service == service
        assert profile.entra_tenant_id == m365.tenant_id
        once = Schedule.objects.get(process_type=profiles.PROCESS_TYPE)
        assert (once.kind, once.run_at, once.config_id) == ("once", run_at, str(profile.pk))

        # Step 4: the folder synchronization, never deleting, every 15 minutes.
        wizard.setup_folder_sync(now=now)
        sync = FolderSynchronization.objects.get()
        assert (sync.name, sync.type, sync.mode) == (wizard.FOLDER_SYNC_NAME, "m365", "multiple")
        assert sync.directory_service == service and sync.entra_tenant_id == m365.tenant_id
        assert sync.delete_in_mailbox == FolderSynchronization.Delete.NEVER
        assert not sync.synchronize_users
        daily = Schedule.objects.get(process_type=foldersync.PROCESS_TYPE)
        assert (daily.kind, daily.interval_minutes) == ("every_n_minutes", 15)
        assert daily.config_id == str(sync.pk)

        # Step 5: Reader for the chosen group, on top of its roles.
        GroupRole.objects.create(group=synced, role=Role.COMPLIANCE)
        wizard.grant_reader(synced)
        assert synced.role_set == {Role.READER.value, Role.COMPLIANCE.value}
        state = wizard.state()
        assert state.next_step is None and all(state.done.values())
        assert synced in state.reader_groups

        # The second run finds everything and makes nothing.
        before = counts()
        again = run_all(now + timedelta(hours=1), synced, m365.tenant_id)
        assert counts() == before
        assert [r.created for r in again] == [[]] * 5
        assert all(r.reused for r in again)


def test_a_refused_consent_makes_nothing(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    m365.set_consent(False)
    with tenant_context(tenant_a.tenant):
        before = counts()
        with pytest.raises(wizard.WizardError, match=m365.tenant_id) as caught:
            wizard.connect_tenant(m365.tenant_id, now=timezone.now())
        assert "could not be reached" in str(caught.value)
        assert counts() == before
        assert wizard.state().next_step == "connect"
        with pytest.raises(wizard.WizardError, match="Connect Tenant"):
            wizard.connect_tenant("  ", now=timezone.now())
        # The later steps that need the tenant refuse too, and make nothing.
        with pytest.raises(wizard.WizardError, match="Connect the tenant first"):
            wizard.setup_archiving(timezone.now() + timedelta(minutes=5), now=timezone.now())
        with pytest.raises(wizard.WizardError, match="Connect the tenant first"):
            wizard.setup_folder_sync(now=timezone.now())
        assert counts() == before


def test_objects_made_by_hand_are_found_and_kept(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    now = timezone.now()
    with tenant_context(tenant_a.tenant):
        service = directory.save_service(
            "Contoso by hand",
            DirectoryService.Kind.ENTRA,
            directory.Constraints(only_group_names=[]),
            entra_tenant_id=m365.tenant_id,
        )
        profile = profiles.save_profile(
            profiles.ProfileData(
                name="Import by hand",
                type=ArchivingProfile.Type.M365,
                mode=ArchivingProfile.Mode.MULTIPLE,
                directory_service=service,
            )
        )
        # The profile ran already: the wizard adds no Once schedule to it.
        JobRun.objects.create(
            process_type=profiles.PROCESS_TYPE,
            config_type=profile._meta.label_lower,
            config_id=str(profile.pk),
            status=JobRun.Status.FINISHED,
        )
        result = wizard.connect_tenant(m365.tenant_id, now=now)
        assert result.reused == ["Directory service Contoso by hand"]
        assert DirectoryService.objects.count() == 1
        wizard.setup_archiving(now + timedelta(minutes=5), now=now)
        assert list(ArchivingProfile.objects.values_list("name", flat=True)) == ["Import by hand"]
        assert not Schedule.objects.filter(process_type=profiles.PROCESS_TYPE).exists()
        assert wizard.state().done["archiving"]


def test_journal_address_of_a_user_mailbox_is_refused(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        taken = tenant_a.mailbox.primary_address
        before = counts()
        with pytest.raises(wizard.WizardError, match="not a journal mailbox"):
            wizard.setup_journal(taken)
        assert counts() == before


def _consent_answer(client: Client, flow: str, answer: dict[str, str]) -> None:
    session = client.session
    session[CONSENT_KEY] = {flow: {"state": "s", **answer}}
    session.save()


def test_pages_show_a_refused_consent_and_make_nothing(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    flow = "wizardflow01"
    _consent_answer(
        admin_client_a, flow, {"status": "error", "error": "Consent was not granted: denied."}
    )
    url = reverse("adminaccess:wizard_m365_connect")
    response = admin_client_a.post(url, {"flow": flow})
    assert response.status_code == 400
    assert "Consent was not granted: denied." in response.content.decode()
    status = admin_client_a.get(reverse("adminaccess:wizard_m365_consent_status"), {"flow": flow})
    assert 'data-testid="consent-error"' in status.content.decode()
    response = admin_client_a.post(url, {"flow": "nosuchflow0"})
    assert "click Connect Tenant" in response.content.decode()
    with tenant_context(tenant_a.tenant):
        assert not DirectoryService.objects.exists() and not Schedule.objects.exists()


def test_pages_walk_the_steps(
    tenant_a: TenantWorld, admin_client_a: Client, reader_client_a: Client, m365: EmulatorHandle
) -> None:
    flow = "wizardflow02"
    _consent_answer(admin_client_a, flow, {"status": "done", "tenant": m365.tenant_id})
    response = admin_client_a.post(reverse("adminaccess:wizard_m365_connect"), {"flow": flow})
    assert response.status_code == 302
    page = admin_client_a.get(response["Location"]).content.decode()
    assert "Created: Directory service Microsoft Entra ID" in page
    assert m365.tenant_id in page
    admin_client_a.post(reverse("adminaccess:wizard_m365_journal"), {"address": ""})
    page = admin_client_a.get(reverse("adminaccess:wizard_m365_journal")).content.decode()
    with tenant_context(tenant_a.tenant):
        endpoint = JournalEndpoint.objects.get()
    assert endpoint.smtp_address in page and "Send journal reports to" in page
    bad = admin_client_a.post(reverse("adminaccess:wizard_m365_archiving"), {"run_at": "soon"})
    assert bad.status_code == 400 and "YYYY-MM-DD HH:MM" in bad.content.decode()
    past = admin_client_a.post(
        reverse("adminaccess:wizard_m365_archiving"), {"run_at": "2020-01-01T10:00"}
    )
    assert past.status_code == 400 and "1 minute in the future" in past.content.decode()
    assert admin_client_a.post(reverse("adminaccess:wizard_m365_archiving")).status_code == 302
    assert admin_client_a.post(reverse("adminaccess:wizard_m365_folders")).status_code == 302
    with tenant_context(tenant_a.tenant):
        group = Group.objects.create(name="Everybody")
    response = admin_client_a.post(reverse("adminaccess:wizard_m365_access"), {"group": group.pk})
    assert response.status_code == 302
    overview = admin_client_a.get(reverse("adminaccess:wizard_m365")).content.decode()
    assert "Run again" in overview and wizard.FOLDER_SYNC_NAME in overview
    with tenant_context(tenant_a.tenant):
        assert Role.READER.value in Group.objects.get(pk=group.pk).role_set
        assert ArchivingProfile.objects.count() == 1
    # Only Admins run the wizard.
    assert reader_client_a.get(reverse("adminaccess:setup_wizards")).status_code in (302, 403)
