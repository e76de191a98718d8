"""The "Microsoft 365 / Entra ID" setup wizard: what first-setup-m365.md makes by hand.

Each step finds what an earlier run (or the admin by hand) made and creates only what is
missing, through the same services as the pages do, so running the wizard again creates
nothing twice. Its progress is not stored apart: it is read from the objects themselves
(the directory service by its Entra tenant id, the others by the directory service they
use or by the wizard's names), so an object made by hand counts as done too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction

from mailvault.accounts import services as accounts
from mailvault.accounts.models import Group
from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox, MailboxAddress
from mailvault.directory import entra
from mailvault.directory import services as directory
from mailvault.directory.models import DirectoryService
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobRun, Schedule
from mailvault.jobs.recurrence import Kind, Recurrence, RecurrenceError
from mailvault.sources import journal_endpoints as journal
from mailvault.sources.foldersync import services as foldersync
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services as profiles
from mailvault.tenancy.context import current_tenant
from mailvault.tenancy.models import Tenant

# The wizard's names and schedules (the guide leaves them to the admin; these are its
# defaults, shown on every step and editable afterwards on the objects' own pages).
DIRECTORY_NAME = "Microsoft Entra ID"
ENDPOINT_NAME = "Microsoft 365 Journal"
JOURNAL_LOCAL_PART = "journal"
JOURNAL_DISPLAY_NAME = "Journal"
PROFILE_NAME = "Microsoft 365 initial archiving"
FOLDER_SYNC_NAME = "Microsoft 365 folders"
DIRECTORY_EVERY_MINUTES = 60  # users, groups and mailboxes: hourly
FOLDER_SYNC_EVERY_MINUTES = 15  # where messages sit: closer to what users see
PROFILE_ONCE_LEAD = timedelta(minutes=5)  # the guide: a Once at least 1 minute ahead

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
PURVIEW_PORTAL = "https://purview.microsoft.com/"

STEPS = ("connect", "journal", "archiving", "folders", "access")


class WizardError(ValueError):
    """A step that cannot be done, with a message for the admin; nothing of the step was
    made (each step is one transaction and checks everything before it writes)."""


@dataclass
class StepResult:
    """What a step made and what it found made already (labels for the admin)."""

    created: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    def add(self, label: str, created: bool) -> None:
        (self.created if created else self.reused).append(label)


@dataclass
class WizardState:
    """Everything the wizard made or found, read fresh for each page."""

    service: DirectoryService | None = None
    directory_schedule: Schedule | None = None
    directory_run: JobRun | None = None
    endpoint: JournalEndpoint | None = None
    journal_mailbox: Mailbox | None = None
    profile: ArchivingProfile | None = None
    profile_schedule: Schedule | None = None
    profile_run: JobRun | None = None
    folder_sync: FolderSynchronization | None = None
    folder_sync_schedule: Schedule | None = None
    reader_groups: list[Group] = field(default_factory=list)

    @property
    def done(self) -> dict[str, bool]:
        return {
            "connect": self.service is not None and self.directory_schedule is not None,
            "journal": self.endpoint is not None,
            "archiving": self.profile is not None
            and (self.profile_schedule is not None or self.profile_run is not None),
            "folders": self.folder_sync is not None and self.folder_sync_schedule is not None,
            "access": bool(self.reader_groups),
        }

    @property
    def next_step(self) -> str | None:
        return next((step for step in STEPS if not self.done[step]), None)


# --- finding what exists ----------------------------------------------------------------


def _schedule(process_type: str, config: models.Model | None) -> Schedule | None:
    if config is None:
        return None
    return jobs.schedules_for(config).filter(process_type=process_type).order_by("pk").first()


def _last_run(process_type: str, config: models.Model | None) -> JobRun | None:
    if config is None:
        return None
    return (
        JobRun.objects.filter(
            process_type=process_type,
            config_type=config._meta.label_lower,
            config_id=str(config.pk),
        )
        .order_by("-pk")
        .first()
    )


def find_service(entra_tenant_id: str = "") -> DirectoryService | None:
    """The Entra directory service of ``entra_tenant_id`` (any connected one without)."""
    entra_services = DirectoryService.objects.filter(kind=DirectoryService.Kind.ENTRA)
    if entra_tenant_id:
        return entra_services.filter(entra_tenant_id=entra_tenant_id).order_by("pk").first()
    named = entra_services.filter(name=DIRECTORY_NAME).exclude(entra_tenant_id="").first()
    return named or entra_services.exclude(entra_tenant_id="").order_by("pk").first()


def find_endpoint() -> JournalEndpoint | None:
    """The wizard's endpoint by its name, else any endpoint filing into a journal mailbox."""
    endpoints = JournalEndpoint.objects.select_related("mailbox")
    return (
        endpoints.filter(name=ENDPOINT_NAME).order_by("pk").first()
        or endpoints.filter(mailbox__kind=Mailbox.Kind.JOURNAL).order_by("pk").first()
    )


def _find_profile(service: DirectoryService) -> ArchivingProfile | None:
    P = ArchivingProfile
    return (
        P.objects.filter(type=P.Type.M365, mode=P.Mode.MULTIPLE, directory_service=service)
        .order_by("pk")
        .first()
    )


def _find_folder_sync(service: DirectoryService) -> FolderSynchronization | None:
    FS = FolderSynchronization
    return (
        FS.objects.filter(type=FS.Type.M365, mode=FS.Mode.MULTIPLE, directory_service=service)
        .order_by("pk")
        .first()
    )


def state() -> WizardState:
    """The wizard's progress in the active tenant, read from the objects themselves."""
    found = WizardState(service=find_service())
    found.endpoint = find_endpoint()
    found.journal_mailbox = found.endpoint.mailbox if found.endpoint else None
    found.reader_groups = list(Group.objects.filter(grants__role=Role.READER).distinct())
    service = found.service
    if service is None:
        return found
    found.directory_schedule = _schedule(directory.PROCESS_TYPE, service)
    found.directory_run = _last_run(directory.PROCESS_TYPE, service)
    found.profile = _find_profile(service)
    found.profile_schedule = _schedule(profiles.PROCESS_TYPE, found.profile)
    found.profile_run = _last_run(profiles.PROCESS_TYPE, found.profile)
    found.folder_sync = _find_folder_sync(service)
    found.folder_sync_schedule = _schedule(foldersync.PROCESS_TYPE, found.folder_sync)
    return found


def _free_name(wanted: str, taken: models.QuerySet[models.Model], suffix: str) -> str:
    """``wanted``, or ``wanted (suffix)`` when another configuration has the name."""
    return f"{wanted} ({suffix})" if taken.filter(name__iexact=wanted).exists() else wanted


def _one_at_a_time() -> None:
    """Within a step's transaction: lock the tenant's row, so that two admins (or a
    double click) running the same step one after the other find what the first made
    instead of both making it."""
    Tenant.objects.select_for_update().filter(pk=current_tenant().pk).first()


def _service_or_error() -> DirectoryService:
    service = find_service()
    if service is None:
        raise WizardError("Connect the tenant first (step 1): no Entra directory service yet.")
    return service


# --- the steps --------------------------------------------------------------------------


def connect_tenant(
    entra_tenant_id: str, *, now: datetime, time_zone: str = "UTC", triggered_by: str = ""
) -> StepResult:
    """Step 1: the directory service of the consented tenant and its schedule; the
    first synchronization is queued when the service never ran (the Reader step needs
    its groups). The connection is tested before anything is written."""
    tid = entra_tenant_id.strip()
    if not tid:
        raise WizardError("Connect the tenant first: click Connect Tenant and grant consent.")
    try:
        entra.test_connection(tid)
    except directory.DirectoryError as exc:
        raise WizardError(f"Tenant {tid} could not be reached: {exc}") from exc
    result = StepResult()
    with transaction.atomic():
        _one_at_a_time()
        service = find_service(tid)
        if service is None:
            name = _free_name(DIRECTORY_NAME, DirectoryService.objects.all(), tid[:8])
            try:
                service = directory.save_service(
                    name,
                    DirectoryService.Kind.ENTRA,
                    directory.Constraints(only_group_names=[]),
                    entra_tenant_id=tid,
                )
            except directory.DirectoryError as exc:
                raise WizardError(str(exc)) from exc
            result.add(f"Directory service {service.name}", True)
        else:
            result.add(f"Directory service {service.name}", False)
        schedule = _schedule(directory.PROCESS_TYPE, service)
        if schedule is None:
            every = Recurrence(
                Kind.EVERY_N_MINUTES, time_zone=time_zone, interval_minutes=DIRECTORY_EVERY_MINUTES
            )
            schedule = _save_schedule(directory.PROCESS_TYPE, service, every, now)
            result.add(f"Schedule: {schedule.description}", True)
        else:
            result.add(f"Schedule: {schedule.description}", False)
        if _last_run(directory.PROCESS_TYPE, service) is None:
            jobs.run_now(directory.PROCESS_TYPE, service, triggered_by=triggered_by)
            result.add("First synchronization (queued)", True)
    return result


def _save_schedule(
    process_type: str, config: models.Model, rec: Recurrence, now: datetime
) -> Schedule:
    try:
        return jobs.save_schedule(process_type, config, rec, now=now)
    except RecurrenceError as exc:
        raise WizardError(str(exc)) from exc


def default_journal_address() -> str:
    return f"{JOURNAL_LOCAL_PART}@{current_tenant().default_domain}"


def setup_journal(address: str = "", display_name: str = JOURNAL_DISPLAY_NAME) -> StepResult:
    """Step 2: a journal mailbox and the endpoint filing into it (whose SMTP address goes
    into the Purview journal rule). An existing endpoint is kept with its mailbox."""
    result = StepResult()
    with transaction.atomic():
        _one_at_a_time()
        endpoint = find_endpoint()
        if endpoint is not None:
            result.add(f"Journal mailbox {endpoint.mailbox.primary_address}", False)
            result.add(f"Journal endpoint {endpoint.name}", False)
            return result
        wanted = (address or default_journal_address()).strip().casefold()
        row = MailboxAddress.objects.select_related("mailbox").filter(address=wanted).first()
        if row is not None:
            mailbox = row.mailbox
            if mailbox.kind != Mailbox.Kind.JOURNAL:
                raise WizardError(
                    f"{wanted} belongs to a mailbox that is not a journal mailbox; "
                    "choose another address."
                )
            result.add(f"Journal mailbox {mailbox.primary_address}", False)
        else:
            try:
                mailbox = journal.create_journal_mailbox(wanted, display_name)
            except journal.JournalEndpointError as exc:
                raise WizardError(str(exc)) from exc
            result.add(f"Journal mailbox {mailbox.primary_address}", True)
        endpoint = journal.create_endpoint(ENDPOINT_NAME, mailbox)
        result.add(f"Journal endpoint {endpoint.name}", True)
    return result


def setup_archiving(run_at: datetime, *, now: datetime, time_zone: str = "UTC") -> StepResult:
    """Step 3: the Microsoft 365 archiving profile (multiple mailboxes of the directory
    service) with a Once schedule. A profile that ran already gets no new schedule."""
    service = _service_or_error()
    result = StepResult()
    with transaction.atomic():
        _one_at_a_time()
        profile = _find_profile(service)
        if profile is None:
            P = ArchivingProfile
            name = _free_name(PROFILE_NAME, P.objects.all(), service.name)
            data = profiles.ProfileData(
                name=name, type=P.Type.M365, mode=P.Mode.MULTIPLE, directory_service=service
            )
            try:
                profile = profiles.save_profile(data)
            except profiles.ProfileError as exc:
                raise WizardError(str(exc)) from exc
            result.add(f"Archiving profile {profile.name}", True)
        else:
            result.add(f"Archiving profile {profile.name}", False)
        schedule = _schedule(profiles.PROCESS_TYPE, profile)
        if schedule is not None:
            result.add(f"Schedule: {schedule.description}", False)
        elif _last_run(profiles.PROCESS_TYPE, profile) is not None:
            result.add("Run (it ran already; no new schedule)", False)
        else:
            once = Recurrence(Kind.ONCE, time_zone=time_zone, run_at=run_at)
            schedule = _save_schedule(profiles.PROCESS_TYPE, profile, once, now)
            result.add(f"Schedule: {schedule.description}", True)
    return result


def setup_folder_sync(*, now: datetime, time_zone: str = "UTC") -> StepResult:
    """Step 4: the Microsoft 365 folder synchronization (multiple mailboxes, never delete,
    no user synchronization: the directory has its own schedule), every 15 minutes."""
    service = _service_or_error()
    result = StepResult()
    with transaction.atomic():
        _one_at_a_time()
        sync = _find_folder_sync(service)
        if sync is None:
            FS = FolderSynchronization
            name = _free_name(FOLDER_SYNC_NAME, FS.objects.all(), service.name)
            data = foldersync.FolderSyncData(
                name=name, type=FS.Type.M365, mode=FS.Mode.MULTIPLE, directory_service=service
            )
            try:
                sync = foldersync.save_folder_sync(data)
            except foldersync.FolderSyncError as exc:
                raise WizardError(str(exc)) from exc
            result.add(f"Folder synchronization {sync.name}", True)
        else:
            result.add(f"Folder synchronization {sync.name}", False)
        schedule = _schedule(foldersync.PROCESS_TYPE, sync)
        if schedule is None:
            every = Recurrence(
                Kind.EVERY_N_MINUTES,
                time_zone=time_zone,
                interval_minutes=FOLDER_SYNC_EVERY_MINUTES,
            )
            schedule = _save_schedule(foldersync.PROCESS_TYPE, sync, every, now)
            result.add(f"Schedule: {schedule.description}", True)
        else:
            result.add(f"Schedule: {schedule.description}", False)
    return result


def grant_reader(group: Group) -> StepResult:
    """Step 5: the chosen group gets Reader besides the roles it has."""
    result = StepResult()
    roles = group.role_set
    if Role.READER.value in roles:
        result.add(f"Reader role of {group.name}", False)
        return result
    accounts.set_group_roles(group, roles | {Role.READER.value})
    result.add(f"Reader role of {group.name}", True)
    return result


def purview_url() -> str:
    """Where the admin makes the journal rule: Microsoft's Purview portal, or the
    emulator's Purview pages when Mailvault talks to the emulator."""
    base = settings.MAILVAULT_M365_AUTHORITY_BASE.rstrip("/")
    if base == MICROSOFT_AUTHORITY:
        return PURVIEW_PORTAL
    return f"{base}/purview/journalrules"


def default_once_run_at(now: datetime) -> datetime:
    """The Once schedule's default: a few minutes ahead, on the minute."""
    return (now + PROFILE_ONCE_LEAD).replace(second=0, microsecond=0)
