"""Executes one JobRun: claim, run the process type's function, record the outcome.

Exactly-once: the scheduler and "run now" enqueue one django-tasks task per JobRun; the
database backend's worker claims a task with ``SELECT … FOR UPDATE SKIP LOCKED`` (one
worker on SQLite), and :func:`execute_run` only starts a run that is still *queued*
(an atomic ``UPDATE … WHERE status='queued'``). A partial unique index on JobRun allows
one *running* run per configuration, so two runs of one configuration never overlap.

Timeouts: a job's own safe points (``ctx.check_cancelled()``) raise :class:`TimedOut`
once its type's timeout has passed; the run ends *cancelled* with an error message. A job
that never reaches a safe point cannot be stopped from inside Python (threads cannot be
killed). In the worker the watchdog then, after ``MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS``,
marks the run *failed* and ends the worker process (``os._exit``); ``mailvault worker``
restarts its child process. Outside the worker (tests, inline runs) it only marks the run.

Lost workers: while a run executes, the watchdog writes a heartbeat. The reaper
(:func:`reap_lost_runs`, called by the scheduler and at worker start) fails a running run
whose heartbeat is older than ``MAILVAULT_JOB_LOST_AFTER_SECONDS`` with "worker lost"; the
schedule's next run proceeds normally.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from mailvault.jobs import registry
from mailvault.jobs.context import Cancelled, JobContext, JobFailed, TimedOut, add_message
from mailvault.jobs.models import JobRun, Severity
from mailvault.tenancy.context import tenant_context

logger = logging.getLogger("mailvault.jobs")

EXIT_HARD_TIMEOUT = 75


@dataclass
class WorkerMode:
    """Set by ``mailvault worker`` in its worker process: heartbeats and hard timeouts."""

    active: bool = False
    hard_exit: bool = False


worker_mode = WorkerMode()


def execute_run(
    run_id: int,
    *,
    worker_id: str = "",
    task_result_id: str = "",
    heartbeat_seconds: float | None = None,
    hard_exit: bool = False,
    cancel_poll_seconds: float = 1.0,
) -> str:
    """Run a queued JobRun to its end; returns the final status."""
    run = JobRun.unscoped.select_related("tenant").get(pk=run_id)
    with tenant_context(run.tenant):
        if not _claim(run, worker_id, task_result_id):
            run.refresh_from_db()
            return run.status
        outcome = _Outcome()
        watchdog = None
        try:
            ptype = registry.get(run.process_type)
            try:
                config = ptype.load_config(run.config_id)
            except ObjectDoesNotExist:
                raise ConfigurationGone(
                    f"The configuration {run.config_name or run.config_id} no longer exists."
                ) from None
            ctx = JobContext(run, ptype, config, cancel_poll_seconds=cancel_poll_seconds)
            if heartbeat_seconds:
                watchdog = _Watchdog(run, ptype, heartbeat_seconds, hard_exit)
                watchdog.start()
            ptype.function(ctx)
        except TimedOut as exc:
            outcome.set(JobRun.Status.CANCELLED, Severity.ERROR, f"{exc}; cancelled.")
        except Cancelled as exc:
            outcome.set(JobRun.Status.CANCELLED, Severity.WARNING, str(exc) or "Cancelled")
        except JobFailed as exc:
            run.refresh_from_db(fields=["max_severity"])
            said = run.max_severity >= Severity.ERROR
            outcome.set(JobRun.Status.FAILED, Severity.ERROR, "" if said else str(exc) or "Failed.")
        except Exception as exc:
            tb = traceback.format_exc()
            outcome.set(
                JobRun.Status.FAILED,
                Severity.ERROR,
                f"Failed: {type(exc).__name__}: {exc}\n\n{tb}",
                tb,
            )
        except BaseException as exc:  # worker shutdown (SystemExit, KeyboardInterrupt)
            outcome.set(
                JobRun.Status.FAILED,
                Severity.ERROR,
                f"Interrupted: the worker stopped during the run ({type(exc).__name__}).",
            )
            _finish(run, outcome)
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
        _finish(run, outcome)
        run.refresh_from_db()
        return run.status


class ConfigurationGone(RuntimeError):
    pass


@dataclass
class _Outcome:
    status: str = JobRun.Status.FINISHED
    severity: int | None = None
    text: str = ""
    traceback: str = ""

    def set(self, status: str, severity: int, text: str, tb: str = "") -> None:
        self.status, self.severity, self.text, self.traceback = status, severity, text, tb


def _claim(run: JobRun, worker_id: str, task_result_id: str) -> bool:
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = JobRun.unscoped.filter(pk=run.pk, status=JobRun.Status.QUEUED).update(
                status=JobRun.Status.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker_id=worker_id[:64],
                task_result_id=task_result_id or run.task_result_id,
            )
    except IntegrityError:
        other = (
            JobRun.unscoped.filter(
                tenant_id=run.tenant_id,
                process_type=run.process_type,
                config_type=run.config_type,
                config_id=run.config_id,
                status=JobRun.Status.RUNNING,
            )
            .values_list("request_id", flat=True)
            .first()
        )
        JobRun.unscoped.filter(pk=run.pk, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.CANCELLED, started_at=now, ended_at=now
        )
        add_message(
            run,
            Severity.WARNING,
            f"Skipped: the previous run of this configuration ({other}) is still running.",
        )
        return False
    return claimed == 1


def _finish(run: JobRun, outcome: _Outcome) -> None:
    if outcome.text:
        add_message(run, outcome.severity or Severity.INFO, outcome.text)
    fields: dict[str, object] = {"status": outcome.status, "ended_at": timezone.now()}
    if outcome.traceback:
        fields["traceback"] = outcome.traceback
    if outcome.status == JobRun.Status.FINISHED:
        run.refresh_from_db(fields=["progress_total"])
        if run.progress_total:
            fields["progress_done"] = run.progress_total
    # Only a run that is still ours: the watchdog or reaper may have failed it already.
    JobRun.unscoped.filter(pk=run.pk, status=JobRun.Status.RUNNING).update(**fields)


class _Watchdog(threading.Thread):
    """Heartbeat, and the hard end of a job that ignores its timeout."""

    def __init__(
        self, run: JobRun, ptype: registry.ProcessType, every: float, hard_exit: bool
    ) -> None:
        super().__init__(name=f"jobs-watchdog-{run.pk}", daemon=True)
        self.run_obj = run
        self.every = every
        self.hard_deadline = (
            time.monotonic()
            + ptype.timeout_seconds
            + settings.MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS
        )
        self.timeout_seconds = ptype.timeout_seconds
        self.hard_exit = hard_exit
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.every + 5)

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.every):
                try:
                    JobRun.unscoped.filter(pk=self.run_obj.pk, status=JobRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                    if time.monotonic() > self.hard_deadline:
                        self._give_up()
                        return
                except DatabaseError:
                    logger.warning("heartbeat of run %s failed; retrying", self.run_obj.pk)
                    connection.close()
        finally:
            connection.close()

    def _give_up(self) -> None:
        grace = settings.MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS
        text = (
            f"Timed out after {self.timeout_seconds} s and did not stop at a safe point "
            f"within {grace} s more"
            + ("; the worker process restarts to free itself." if self.hard_exit else ".")
        )
        fail_run(self.run_obj, text)
        if self.hard_exit:
            logger.error("run %s: %s", self.run_obj.pk, text)
            connection.close()
            os._exit(EXIT_HARD_TIMEOUT)


def fail_run(run: JobRun, text: str, *, from_status: str = JobRun.Status.RUNNING) -> bool:
    """Mark a running (or ``from_status``) run failed with an error message, and its queue
    task if any."""
    changed = JobRun.unscoped.filter(pk=run.pk, status=from_status).update(
        status=JobRun.Status.FAILED, ended_at=timezone.now()
    )
    if changed:
        add_message(run, Severity.ERROR, text)
        _fail_task_result(run.task_result_id, text)
    return bool(changed)


def _fail_task_result(task_result_id: str, text: str) -> None:
    if not task_result_id:
        return
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(pk=task_result_id, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        exception_class_path="mailvault.jobs.runner.WorkerLost",
        traceback=text,
    )


def reap_lost_runs(now: datetime | None = None, *, lost_after: float | None = None) -> int:
    """Fail running runs whose worker stopped sending heartbeats; returns how many."""
    now = now or timezone.now()
    seconds = lost_after if lost_after is not None else settings.MAILVAULT_JOB_LOST_AFTER_SECONDS
    cutoff = now - timedelta(seconds=seconds)
    reaped = 0
    for run in JobRun.unscoped.filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff):
        last = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
        text = (
            f"Worker lost: no heartbeat from worker {run.worker_id or '?'} since {last}; "
            "the run was abandoned. The schedule's next run proceeds as usual."
        )
        if fail_run(run, text):
            reaped += 1
    return reaped + _reap_runs_lost_before_start(cutoff)


def _reap_runs_lost_before_start(cutoff: datetime) -> int:
    """Fail queued runs whose queue task a worker claimed (or finished) but which never
    started: the worker died in between. Left alone, such a run would keep its
    configuration blocked for ever (one run per configuration at a time)."""
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    queued = JobRun.unscoped.filter(status=JobRun.Status.QUEUED, created_at__lt=cutoff)
    reaped = 0
    for run in queued.exclude(task_result_id=""):
        task = DBTaskResult.objects.filter(pk=run.task_result_id).first()
        if task is None:
            reason = "its queue task is gone"
        elif task.status == TaskResultStatus.RUNNING and (
            task.started_at is None or task.started_at < cutoff
        ):
            reason = f"a worker claimed it at {task.started_at} and was lost before starting it"
        elif task.status in (TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL):
            reason = f"its queue task ended ({task.status}) without starting it"
        else:
            continue  # still waiting for a worker: not lost
        text = f"Worker lost: the run never started ({reason}). The next run proceeds as usual."
        if fail_run(run, text, from_status=JobRun.Status.QUEUED):
            reaped += 1
    return reaped
