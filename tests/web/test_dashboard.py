"""The Admin Access dashboard: notifications with their fixes, quotas, mail statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from factories import TenantWorld, add_message, client_for
from mailvault.accounts.models import GroupRole
from mailvault.accounts.roles import Role
from mailvault.archive.models import Message
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.journal_endpoints import create_endpoint
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import tenant_context
from mailvault.web import dashboard

pytestmark = pytest.mark.django_db


def _notices(client: Client) -> list[dashboard.Notice]:
    response = client.get(reverse("adminaccess:dashboard"))
    assert response.status_code == 200
    return list(response.context["notices"])


def _texts(client: Client) -> str:
    return " | ".join(n.text for n in _notices(client))


def test_a_new_tenant_is_told_what_is_missing(tenant_a: TenantWorld, admin_client_a: Client):
    notices = _notices(admin_client_a)
    texts = " | ".join(n.text for n in notices)
    assert "still the only Admin" in texts
    assert "no journal endpoint" in texts
    # Every notification links to a page that exists.
    for notice in notices:
        assert admin_client_a.get(notice.fix_url).status_code == 200, notice


def test_no_reader_group(tenant_a: TenantWorld, admin_client_a: Client):
    assert "No group holds the Reader role" not in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        GroupRole.objects.filter(role=Role.READER).delete()
    assert "No group holds the Reader role" in _texts(admin_client_a)


def test_journal_endpoint_silent_for_a_day(tenant_a: TenantWorld, admin_client_a: Client):
    with tenant_context(tenant_a.tenant):
        endpoint = create_endpoint("Exchange Online", tenant_a.mailbox)
    assert "Exchange Online has never received a message" in _texts(admin_client_a)
    JournalEndpoint.unscoped.filter(pk=endpoint.pk).update(
        last_received_at=timezone.now() - timedelta(hours=25)
    )
    assert "received nothing for 24 hours" in _texts(admin_client_a)
    JournalEndpoint.unscoped.filter(pk=endpoint.pk).update(last_received_at=timezone.now())
    texts = _texts(admin_client_a)
    assert "Exchange Online" not in texts and "no journal endpoint" not in texts


def test_failing_schedule(tenant_a: TenantWorld, admin_client_a: Client):
    process = "ingestion.file_import"
    with tenant_context(tenant_a.tenant):
        schedule = Schedule.objects.create(process_type=process, kind="hourly", minute=5)
        JobRun.objects.create(process_type=process, schedule=schedule, status=JobRun.Status.FAILED)
    notices = [n for n in _notices(admin_client_a) if "schedule" in n.text]
    assert len(notices) == 1 and notices[0].level == "error"
    with tenant_context(tenant_a.tenant):
        later = JobRun.objects.create(
            process_type=process, schedule=schedule, status=JobRun.Status.FINISHED
        )
        JobRun.objects.filter(pk=later.pk).update(created_at=timezone.now() + timedelta(minutes=1))
    assert not [n for n in _notices(admin_client_a) if "schedule" in n.text]


def test_quota_above_ninety_percent(tenant_a: TenantWorld, admin_client_a: Client):
    from mailvault.accounts.models import User

    tenant = tenant_a.tenant
    users = User.unscoped.filter(tenant=tenant).count()
    tenant.max_users = users
    tenant.save(update_fields=["max_users"])
    notices = [n for n in _notices(admin_client_a) if n.text.startswith("Users:")]
    assert notices and "100%" in notices[0].text and notices[0].level == "error"
    tenant.max_users = users * 100
    tenant.save(update_fields=["max_users"])
    assert not [n for n in _notices(admin_client_a) if n.text.startswith("Users:")]


def test_a_broken_check_shows_itself_and_not_a_500(
    tenant_a: TenantWorld, admin_client_a: Client, monkeypatch: pytest.MonkeyPatch
):
    def broken(now: datetime) -> Iterator[dashboard.Notice]:
        raise RuntimeError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(dashboard, "_CHECKS", [*dashboard._CHECKS, broken])
    notices = _notices(admin_client_a)
    assert any("broken: boom" in n.text and n.level == "error" for n in notices)
    assert any("still the only Admin" in n.text for n in notices)


def test_mail_statistics_count_by_archive_date(tenant_a: TenantWorld, admin_client_a: Client):
    with tenant_context(tenant_a.tenant):
        before = Message.objects.count()
        fresh = add_message(tenant_a.mailbox, "today")
        old = add_message(tenant_a.mailbox, "last week")
        Message.objects.filter(pk=old.pk).update(archived_at=timezone.now() - timedelta(days=7))
        ancient = add_message(tenant_a.mailbox, "last year")
        Message.objects.filter(pk=ancient.pk).update(
            archived_at=timezone.now() - timedelta(days=365)
        )
    response = admin_client_a.get(reverse("adminaccess:dashboard"))
    stats = response.context["stats"]
    assert stats.all_time == before + 3
    assert stats.last_30_days == stats.all_time - 1
    assert stats.last_24_hours >= 1
    assert len(stats.per_day) == dashboard.CHART_DAYS
    today = [bar for bar in stats.per_day if bar.day == timezone.now().date()]
    assert today and today[0].value >= 1
    week_ago = [
        bar for bar in stats.per_day if bar.day == (timezone.now() - timedelta(days=7)).date()
    ]
    assert week_ago[0].value == 1
    # Storage grows: the curve never goes down, and ends at every archived byte.
    values = [bar.value for bar in stats.storage_per_day]
    assert values == sorted(values)
    assert values[-1] == stats.bytes_all_time and fresh.size > 0
    assert "Messages archived per day" in response.content.decode()


def test_the_auditor_sees_no_admin_notifications(tenant_a: TenantWorld):
    from mailvault.accounts.models import Group

    with tenant_context(tenant_a.tenant):
        auditors = Group.objects.create(name="Auditors")
        GroupRole.objects.create(group=auditors, role=Role.AUDITOR)
        tenant_a.member.user_groups.add(auditors)
    client = client_for(tenant_a.member)
    response = client.get(reverse("adminaccess:dashboard"))
    assert response.status_code == 200
    assert response.context["notices"] == []


def test_directory_service_missing_never_synchronized_or_failing(
    tenant_a: TenantWorld, admin_client_a: Client
):
    from mailvault.directory.models import DirectoryService
    from mailvault.directory.services import PROCESS_TYPE

    assert "There is no directory service" in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        service = DirectoryService.objects.create(name="Contoso Entra", kind="entra")
    texts = _texts(admin_client_a)
    assert "There is no directory service" not in texts
    assert "Contoso Entra has never been synchronized" in texts
    label = DirectoryService._meta.label_lower
    with tenant_context(tenant_a.tenant):
        JobRun.objects.create(
            process_type=PROCESS_TYPE,
            config_type=label,
            config_id=str(service.pk),
            status=JobRun.Status.FAILED,
        )
    failed = [n for n in _notices(admin_client_a) if "synchronization of the directory" in n.text]
    assert len(failed) == 1 and failed[0].level == "error" and "Contoso Entra" in failed[0].text
    assert "never been synchronized" not in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        later = JobRun.objects.create(
            process_type=PROCESS_TYPE,
            config_type=label,
            config_id=str(service.pk),
            status=JobRun.Status.FINISHED,
        )
        JobRun.objects.filter(pk=later.pk).update(created_at=timezone.now() + timedelta(minutes=1))
    assert "Contoso Entra" not in _texts(admin_client_a)


def test_synchronized_users_without_reader(tenant_a: TenantWorld, admin_client_a: Client):
    from mailvault.accounts.models import User

    assert "synchronized user(s) hold no Reader role" not in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        User.objects.filter(pk=tenant_a.member.pk).update(source=User.Source.DIRECTORY)
        synced = User.objects.create(
            username=f"synced@{tenant_a.default_domain.name}", source=User.Source.DIRECTORY
        )
    # The member is a Reader through its group; the new synchronized user is not.
    assert "1 synchronized user(s) hold no Reader role" in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        tenant_a.reader_group.members.add(synced)
    assert "hold no Reader role" not in _texts(admin_client_a)


def test_archiving_profile_never_run(tenant_a: TenantWorld, admin_client_a: Client):
    from mailvault.sources.models_profiles import ArchivingProfile
    from mailvault.sources.profiles.services import PROCESS_TYPE

    with tenant_context(tenant_a.tenant):
        profile = ArchivingProfile.objects.create(name="Initial import", type="imap")
    notices = [n for n in _notices(admin_client_a) if "Initial import" in n.text]
    assert len(notices) == 1 and "has never run" in notices[0].text
    assert admin_client_a.get(notices[0].fix_url).status_code == 200
    with tenant_context(tenant_a.tenant):
        JobRun.objects.create(
            process_type=PROCESS_TYPE,
            config_type=ArchivingProfile._meta.label_lower,
            config_id=str(profile.pk),
            status=JobRun.Status.RUNNING,
        )
    assert "Initial import" not in _texts(admin_client_a)


def test_folder_synchronization_missing_or_without_schedule(
    tenant_a: TenantWorld, admin_client_a: Client
):
    from mailvault.jobs.services import schedules_for
    from mailvault.sources.models_foldersync import FolderSynchronization

    assert "There is no folder synchronization" in _texts(admin_client_a)
    with tenant_context(tenant_a.tenant):
        sync = FolderSynchronization.objects.create(name="Mailbox folders", type="m365")
    texts = _texts(admin_client_a)
    assert "There is no folder synchronization" not in texts
    assert "Mailbox folders has no schedule" in texts
    with tenant_context(tenant_a.tenant):
        Schedule.objects.create(
            process_type="sources.folder_sync",
            config_type=FolderSynchronization._meta.label_lower,
            config_id=str(sync.pk),
            kind="hourly",
            minute=0,
        )
        assert schedules_for(sync).count() == 1
    assert "Mailbox folders" not in _texts(admin_client_a)
