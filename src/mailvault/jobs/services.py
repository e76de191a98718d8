"""Schedules, the scheduler tick, "run now", the process log and the dashboard block.

Everything here runs in a tenant context (``Model.objects``) except the scheduler tick and
the reaper, which are operator code spanning tenants (``Model.unscoped``). Times are
passed in (``now``) so tests control the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from mailvault.jobs import registry
from mailvault.jobs.context import add_message
from mailvault.jobs.models import JobMessage, JobRun, Schedule, Severity
from mailvault.jobs.recurrence import Kind, Recurrence, RecurrenceError, next_run, validate
from mailvault.jobs.runner import reap_lost_runs
from mailvault.tenancy.context import tenant_context

logger = logging.getLogger("mailvault.jobs")


class AlreadyRunning(RuntimeError):
    """Run now refused: a run of this configuration is queued or running."""

    def __init__(self, run: JobRun) -> None:
        super().__init__(f"A run of this configuration is already {run.status}.")
        self.run = run


# --- configuration references ---------------------------------------------------------


def config_ref(ptype: registry.ProcessType, config: models.Model | None) -> tuple[str, str]:
    if ptype.config_model is None:
        if config is not None:
            raise ValueError(f"{ptype.name} takes no configuration")
        return "", ""
    if config is None or config.pk is None:
        raise ValueError(f"{ptype.name} needs a saved {ptype.config_model}")
    if config._meta.label_lower != ptype.config_label:
        raise ValueError(f"{ptype.name} takes a {ptype.config_model}, not {config._meta.label}")
    return ptype.config_label, str(config.pk)


def resolve_config_name(ptype: registry.ProcessType, config_id: str) -> str:
    """The configuration's display name, or a marker when it is gone."""
    if ptype.config_model is None:
        return ""
    try:
        return ptype.resolve_name(ptype.load_config(config_id))
    except models.ObjectDoesNotExist:
        return f"(deleted {ptype.config_model} {config_id})"


# --- schedules ------------------------------------------------------------------------


def save_schedule(
    process_type: str,
    config: models.Model | None,
    recurrence: Recurrence,
    *,
    now: datetime,
    enabled: bool = True,
    schedule: Schedule | None = None,
) -> Schedule:
    """Create or update a schedule after validating the recurrence (RecurrenceError)."""
    ptype = registry.get(process_type)
    validate(recurrence, now=now)
    config_type, config_id = config_ref(ptype, config)
    schedule = schedule or Schedule(process_type=process_type)
    if schedule.pk and schedule.process_type != process_type:
        raise RecurrenceError("A schedule's process type cannot change.", "process_type")
    schedule.config_type, schedule.config_id = config_type, config_id
    schedule.set_recurrence(recurrence)
    schedule.enabled = enabled
    schedule.next_run_at = next_run(recurrence, now) if enabled else None
    schedule.save()
    return schedule


def set_enabled(schedule: Schedule, enabled: bool, *, now: datetime) -> Schedule:
    rec = schedule.recurrence
    if enabled and rec.kind == Kind.ONCE:
        validate(rec, now=now)  # a Once in the past cannot be re-enabled
    schedule.enabled = enabled
    schedule.next_run_at = next_run(rec, now) if enabled else None
    schedule.save(update_fields=["enabled", "next_run_at"])
    return schedule


def schedules_for(config: models.Model) -> QuerySet[Schedule]:
    return Schedule.objects.filter(config_type=config._meta.label_lower, config_id=str(config.pk))


def delete_schedules_for(config: models.Model) -> int:
    """Delete a configuration's schedules (also done by a post_delete signal)."""
    count, _ = Schedule.unscoped.filter(
        config_type=config._meta.label_lower, config_id=str(config.pk)
    ).delete()
    return count


# --- queueing -------------------------------------------------------------------------


def _active_run(
    tenant_id: int, process_type: str, config_type: str, config_id: str
) -> JobRun | None:
    return (
        JobRun.unscoped.filter(
            tenant_id=tenant_id,
            process_type=process_type,
            config_type=config_type,
            config_id=config_id,
            status__in=JobRun.UNFINISHED,
        )
        .order_by("created_at")
        .first()
    )


def active_run(process_type: str, config: models.Model) -> JobRun | None:
    """The queued or running run of a configuration (in the active tenant), if any."""
    return (
        JobRun.objects.filter(
            process_type=process_type,
            config_type=config._meta.label_lower,
            config_id=str(config.pk),
            status__in=JobRun.UNFINISHED,
        )
        .order_by("-pk")
        .first()
    )


def _enqueue(run: JobRun) -> JobRun:
    from mailvault.jobs.tasks import run_job

    result = run_job.enqueue(run.pk)
    run.task_result_id = str(result.id)
    JobRun.unscoped.filter(pk=run.pk).update(task_result_id=run.task_result_id)
    return run


def run_now(
    process_type: str, config: models.Model | None = None, *, triggered_by: str = ""
) -> JobRun:
    """Queue a run immediately (in the active tenant). Raises AlreadyRunning."""
    ptype = registry.get(process_type)
    config_type, config_id = config_ref(ptype, config)
    with transaction.atomic():
        tenant_id = _tenant_id()
        active = _active_run(tenant_id, process_type, config_type, config_id)
        if active is not None:
            raise AlreadyRunning(active)
        run = JobRun.objects.create(
            process_type=process_type,
            config_type=config_type,
            config_id=config_id,
            config_name=ptype.resolve_name(config) if config is not None else "",
            triggered_by=triggered_by or "run now",
        )
        return _enqueue(run)


def run_schedule_now(schedule: Schedule, *, triggered_by: str = "") -> JobRun:
    ptype = registry.get(schedule.process_type)
    config = ptype.load_config(schedule.config_id)
    run = run_now(schedule.process_type, config, triggered_by=triggered_by)
    JobRun.objects.filter(pk=run.pk).update(schedule=schedule)
    return run


def _tenant_id() -> int:
    from mailvault.tenancy.context import current_tenant

    return current_tenant().pk


@dataclass
class TickResult:
    queued: list[int]
    skipped: list[int]
    reaped: int


def tick(now: datetime, *, limit: int = 100) -> TickResult:
    """One scheduler pass over all tenants: reap lost runs, queue due schedules.

    Due schedules are locked with ``SELECT … FOR UPDATE SKIP LOCKED`` (a plain write
    transaction on SQLite), so several schedulers never queue one occurrence twice.
    A due schedule whose configuration still has a queued or running run is skipped;
    the skip is written to that run's messages. Either way next_run_at advances to the
    next occurrence after ``now`` (missed occurrences are not replayed one by one).
    """
    reaped = reap_lost_runs(now)
    queued: list[int] = []
    skipped: list[int] = []
    with transaction.atomic():
        due = (
            Schedule.unscoped.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(enabled=True, next_run_at__lte=now)
            .order_by("next_run_at", "pk")[:limit]
        )
        for schedule in due:
            try:
                with transaction.atomic(), tenant_context(schedule.tenant):
                    run = _fire(schedule, now)
            except Exception:
                # One broken schedule must not stall the others: log it, move it on.
                logger.exception("schedule %s could not be queued", schedule.pk)
                Schedule.unscoped.filter(pk=schedule.pk).update(
                    next_run_at=_safe_next(schedule, now), last_run_at=now
                )
                run = None
            (queued if run is not None else skipped).append(schedule.pk)
    return TickResult(queued, skipped, reaped)


def _safe_next(schedule: Schedule, now: datetime) -> datetime | None:
    try:
        return next_run(schedule.recurrence, now)
    except (RecurrenceError, AssertionError):
        return None


def _fire(schedule: Schedule, now: datetime) -> JobRun | None:
    due_at = schedule.next_run_at
    rec = schedule.recurrence
    schedule.last_run_at = now
    schedule.next_run_at = next_run(rec, now)
    if schedule.next_run_at is None:
        schedule.enabled = False
    schedule.save(update_fields=["last_run_at", "next_run_at", "enabled"])
    try:
        ptype = registry.get(schedule.process_type)
    except registry.UnknownProcessType:
        logger.error("schedule %s has unknown process type %s", schedule.pk, schedule.process_type)
        return None
    active = _active_run(
        schedule.tenant_id, schedule.process_type, schedule.config_type, schedule.config_id
    )
    if active is not None:
        add_message(
            active,
            Severity.WARNING,
            f"Scheduled run due at {due_at:%Y-%m-%d %H:%M} UTC skipped: this run of the "
            "configuration is still " + active.status + ".",
        )
        return None
    run = JobRun.objects.create(
        process_type=schedule.process_type,
        config_type=schedule.config_type,
        config_id=schedule.config_id,
        config_name=resolve_config_name(ptype, schedule.config_id),
        schedule=schedule,
        triggered_by="schedule",
    )
    return _enqueue(run)


# --- process log ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilter:
    process_type: str = ""
    request_id: str = ""
    min_severity: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    finished: bool | None = None  # True: ended runs only; False: queued/running only


def list_runs(f: LogFilter | None = None) -> QuerySet[JobRun]:
    """The active tenant's process log, newest first."""
    f = f or LogFilter()
    qs = JobRun.objects.all()
    if f.process_type:
        qs = qs.filter(process_type=f.process_type)
    if f.request_id:
        qs = qs.filter(request_id__startswith=f.request_id.strip().lower())
    if f.min_severity is not None:
        qs = qs.filter(max_severity__gte=f.min_severity)
    if f.since is not None:
        qs = qs.filter(created_at__gte=f.since)
    if f.until is not None:
        qs = qs.filter(created_at__lt=f.until)
    if f.finished is True:
        qs = qs.exclude(status__in=JobRun.UNFINISHED)
    elif f.finished is False:
        qs = qs.filter(status__in=JobRun.UNFINISHED)
    return qs


def to_json(run: JobRun) -> dict[str, Any]:
    """The entry as a JSON-ready dict ("copy as JSON")."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "process_type": run.process_type,
        "process_type_name": registry.display_name(run.process_type),
        "request_id": str(run.request_id),
        "configuration": {"type": run.config_type, "id": run.config_id, "name": run.config_name},
        "status": run.status,
        "max_severity": Severity(run.max_severity).label.lower(),
        "created": iso(run.created_at),
        "started": iso(run.started_at),
        "ended": iso(run.ended_at),
        "progress": {
            "done": run.progress_done,
            "total": run.progress_total,
            "percent": run.progress_percent,
        },
        "cancel_requested": run.cancel_requested,
        "triggered_by": run.triggered_by,
        "messages": [m.as_dict() for m in JobMessage.objects.filter(run=run)],
    }


def cancel(run: JobRun, *, by: str = "") -> JobRun:
    """Cancel a run: a queued one ends now, a running one at its next safe point."""
    who = f" by {by}" if by else ""
    now = timezone.now()
    if JobRun.objects.filter(pk=run.pk, status=JobRun.Status.QUEUED).update(
        status=JobRun.Status.CANCELLED, cancel_requested=True, ended_at=now
    ):
        add_message(run, Severity.WARNING, f"Cancelled{who} before it started.")
    elif JobRun.objects.filter(pk=run.pk, status=JobRun.Status.RUNNING).update(
        cancel_requested=True
    ):
        add_message(run, Severity.INFO, f"Cancel requested{who}; stopping at the next safe point.")
    run.refresh_from_db()
    return run


def prune(older_than: datetime) -> int:
    """Delete the active tenant's ended runs created before ``older_than``."""
    _, per_model = (
        JobRun.objects.filter(created_at__lt=older_than)
        .exclude(status__in=JobRun.UNFINISHED)
        .delete()
    )
    return per_model.get(JobRun._meta.label, 0)


# --- dashboard ------------------------------------------------------------------------


@dataclass
class DashboardJobs:
    running: list[JobRun]
    failed: list[JobRun]


def dashboard(now: datetime, *, limit: int = 10) -> DashboardJobs:
    """Jobs running now and jobs that failed in the last 24 hours (active tenant)."""
    running = list(
        JobRun.objects.filter(status=JobRun.Status.RUNNING).order_by("-started_at")[:limit]
    )
    failed = list(
        JobRun.objects.filter(
            status=JobRun.Status.FAILED, ended_at__gte=now - timedelta(hours=24)
        ).order_by("-ended_at")[:limit]
    )
    return DashboardJobs(running, failed)
