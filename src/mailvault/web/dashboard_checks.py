"""The dashboard's notifications: missing or inconsistent configuration, each with its fix.

Every function here is registered with :func:`~mailvault.web.dashboard.notice_check` and
yields :class:`~mailvault.web.dashboard.Notice` objects for the active tenant. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db.models import Max, OuterRef, Subquery

from mailvault.accounts.models import GroupRole
from mailvault.accounts.roles import Role
from mailvault.accounts.services import active_admins
from mailvault.jobs.models import JobRun, Schedule
from mailvault.web.dashboard import QUOTA_WARNING, Notice, notice_check, quotas, section_url


@notice_check
def provisioned_admin_alone(now: datetime) -> Iterator[Notice]:
    admins = active_admins()
    if len(admins) == 1 and admins[0].is_provisioned_admin:
        yield Notice(
            "The provisioned admin is still the only Admin. Give a group of your own people "
            "the Admin role, sign in as one of them and delete the provisioned admin.",
            "Groups",
            section_url("groups"),
        )


@notice_check
def nobody_may_read(now: datetime) -> Iterator[Notice]:
    if not GroupRole.objects.filter(role=Role.READER).exists():
        yield Notice(
            "No group holds the Reader role: nobody can search the archive in Web Access.",
            "Groups",
            section_url("groups"),
        )


@notice_check
def journaling(now: datetime) -> Iterator[Notice]:
    from mailvault.sources.models import JournalEndpoint

    endpoints = list(JournalEndpoint.objects.filter(enabled=True))
    if not endpoints:
        yield Notice(
            "There is no journal endpoint: mail sent and received is not archived as it happens.",
            "Journal Endpoints",
            section_url("journal-endpoints"),
        )
        return
    quiet_since = now - timedelta(hours=24)
    for endpoint in endpoints:
        if endpoint.last_received_at is None or endpoint.last_received_at < quiet_since:
            when = (
                "has never received a message"
                if endpoint.last_received_at is None
                else "has received nothing for 24 hours"
            )
            yield Notice(
                f"The journal endpoint {endpoint.name} {when}. Check the journal rule in "
                "Microsoft Purview.",
                "Journal Endpoints",
                section_url("journal-endpoints"),
            )


@notice_check
def failing_schedules(now: datetime) -> Iterator[Notice]:
    latest = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-created_at")
    schedules = Schedule.objects.annotate(
        last_status=Subquery(latest.values("status")[:1]),
        latest_run_at=Max("runs__created_at"),
    ).filter(last_status=JobRun.Status.FAILED)
    for schedule in schedules:
        yield Notice(
            f"The last run of the schedule {schedule} failed "
            f"({schedule.latest_run_at:%Y-%m-%d %H:%M} UTC).",
            "Process Log",
            section_url("process-log"),
            level="error",
        )


@notice_check
def store_verification_failed(now: datetime) -> Iterator[Notice]:
    from mailvault.compliance.integrity import latest_verification

    verification = latest_verification()
    if verification is not None and not verification.last_ok:
        yield Notice(
            f"The last store verification found {verification.last_mismatches} "
            "mismatch(es): stored messages are damaged or missing.",
            "Store Verification",
            section_url("integrity"),
            level="error",
        )


@notice_check
def quota_nearly_used(now: datetime) -> Iterator[Notice]:
    for quota in quotas():
        ratio = quota.ratio
        if ratio is not None and ratio >= QUOTA_WARNING:
            yield Notice(
                f"{quota.label}: {quota.percent}% of the quota is used.",
                "Dashboard",
                section_url("dashboard"),
                level="error" if ratio >= 1 else "warning",
            )


def _latest_runs(process_type: str, label: str) -> dict[str, JobRun]:
    """The newest finished or failed run of each configuration of a process type."""
    latest: dict[str, JobRun] = {}
    runs = JobRun.objects.filter(
        process_type=process_type,
        config_type=label,
        status__in=(JobRun.Status.FINISHED, JobRun.Status.FAILED),
    ).order_by("config_id", "-created_at")
    for run in runs.only("config_id", "status", "created_at"):
        latest.setdefault(run.config_id, run)
    return latest


@notice_check
def directory_services(now: datetime) -> Iterator[Notice]:
    from mailvault.directory.models import DirectoryService
    from mailvault.directory.services import PROCESS_TYPE

    services = list(DirectoryService.objects.all())
    if not services:
        yield Notice(
            "There is no directory service: users, groups and mailboxes are not taken over "
            "from Microsoft 365 or LDAP.",
            "Directory Services",
            section_url("directory-services"),
        )
        return
    latest = _latest_runs(PROCESS_TYPE, DirectoryService._meta.label_lower)
    for service in services:
        run = latest.get(str(service.pk))
        if run is None and service.last_sync_at is None:
            yield Notice(
                f"The directory service {service.name} has never been synchronized.",
                "Directory Services",
                section_url("directory-services"),
            )
        elif run is not None and run.status == JobRun.Status.FAILED:
            yield Notice(
                f"The last synchronization of the directory service {service.name} failed "
                f"({run.created_at:%Y-%m-%d %H:%M} UTC).",
                "Directory Services",
                section_url("directory-services"),
                level="error",
            )


@notice_check
def synchronized_users_without_reader(now: datetime) -> Iterator[Notice]:
    from mailvault.accounts.models import User

    readers = GroupRole.objects.filter(role=Role.READER).values("group")
    count = (
        User.objects.filter(is_active=True, source=User.Source.DIRECTORY)
        .exclude(user_groups__in=readers)
        .count()
    )
    if count:
        yield Notice(
            f"{count} synchronized user(s) hold no Reader role and cannot open Web Access: "
            "give their group the Reader role.",
            "Groups",
            section_url("groups"),
        )


@notice_check
def archiving_profiles_never_run(now: datetime) -> Iterator[Notice]:
    from mailvault.sources.models_profiles import ArchivingProfile
    from mailvault.sources.profiles.services import PROCESS_TYPE

    ran = set(
        JobRun.objects.filter(
            process_type=PROCESS_TYPE, config_type=ArchivingProfile._meta.label_lower
        ).values_list("config_id", flat=True)
    )
    for profile in ArchivingProfile.objects.filter(last_success_at__isnull=True):
        if str(profile.pk) not in ran:
            yield Notice(
                f"The archiving profile {profile.name} has never run: give it a schedule "
                "(Once, for the initial import) or run it now.",
                "Archiving Profiles",
                section_url("archiving-profiles"),
            )


@notice_check
def folder_syncs_without_schedule(now: datetime) -> Iterator[Notice]:
    from mailvault.jobs.services import schedules_for
    from mailvault.sources.models_foldersync import FolderSynchronization

    syncs = list(FolderSynchronization.objects.all())
    if not syncs:
        yield Notice(
            "There is no folder synchronization: archived mail is not filed into the folders "
            "its users keep it in.",
            "Folder Synchronizations",
            section_url("folder-synchronizations"),
        )
    for sync in syncs:
        if not schedules_for(sync).filter(enabled=True).exists():
            yield Notice(
                f"The folder synchronization {sync.name} has no schedule: folders are "
                "mirrored only when it is run by hand.",
                "Folder Synchronizations",
                section_url("folder-synchronizations"),
            )
