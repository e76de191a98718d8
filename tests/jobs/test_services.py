"""Scheduler, runner and process log, in-process with a controlled clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from mailvault.accounts.models import Group
from mailvault.jobs import services
from mailvault.jobs.models import JobMessage, JobRun, Schedule, Severity
from mailvault.jobs.recurrence import Kind, Recurrence, RecurrenceError
from mailvault.jobs.runner import execute_run, reap_lost_runs
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

NOW = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
EVERY_10 = Recurrence(Kind.EVERY_N_MINUTES, "Europe/Berlin", interval_minutes=10)

pytestmark = pytest.mark.django_db


def texts(run: JobRun) -> list[str]:
    return list(JobMessage.objects.filter(run=run).values_list("text", flat=True))


def test_save_schedule_validates_and_sets_next_run(tenant: Tenant) -> None:
    s = services.save_schedule("test.ok", None, EVERY_10, now=NOW)
    assert s.next_run_at == NOW + timedelta(minutes=10)
    with pytest.raises(RecurrenceError, match="1 minute in the future"):
        services.save_schedule("test.ok", None, Recurrence(Kind.ONCE, "UTC", run_at=NOW), now=NOW)
    with pytest.raises(RecurrenceError, match="Unknown time zone"):
        services.save_schedule(
            "test.ok", None, Recurrence(Kind.DAILY, "Nowhere/Land", at_time="01:00"), now=NOW
        )
    assert Schedule.objects.count() == 1


def test_tick_queues_due_schedule_exactly_once_and_advances(tenant: Tenant) -> None:
    s = services.save_schedule("test.ok", None, EVERY_10, now=NOW)
    assert services.tick(NOW + timedelta(minutes=5)).queued == []
    first = services.tick(NOW + timedelta(minutes=10))
    again = services.tick(NOW + timedelta(minutes=10, seconds=5))
    assert first.queued == [s.pk] and again.queued == [] and again.skipped == []
    s.refresh_from_db()
    assert s.next_run_at == NOW + timedelta(minutes=20)
    assert s.last_run_at == NOW + timedelta(minutes=10)
    run = JobRun.objects.get()
    assert run.status == JobRun.Status.QUEUED and run.schedule == s
    assert DBTaskResult.objects.filter(pk=run.task_result_id).count() == 1


def test_overlap_is_skipped_and_logged(tenant: Tenant) -> None:
    s = services.save_schedule("test.ok", None, EVERY_10, now=NOW)
    services.tick(NOW + timedelta(minutes=10))
    run = JobRun.objects.get()
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING)
    result = services.tick(NOW + timedelta(minutes=20))
    assert result.skipped == [s.pk] and result.queued == []
    assert JobRun.objects.count() == 1
    assert any("skipped" in t for t in texts(run))
    s.refresh_from_db()
    assert s.next_run_at == NOW + timedelta(minutes=30)


def test_run_now_refuses_while_running_and_db_forbids_two_running(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    with pytest.raises(services.AlreadyRunning):
        services.run_now("test.ok")
    # A second queued run (raced in) is skipped at start, not run beside the first.
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING)
    twin = JobRun.objects.create(process_type="test.ok")
    assert execute_run(twin.pk) == JobRun.Status.CANCELLED
    assert any("still running" in t for t in texts(twin))


def test_job_runs_to_finished_with_progress_and_messages(tenant: Tenant) -> None:
    run = services.run_now("test.ok", triggered_by="alice")
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    run.refresh_from_db()
    assert (run.progress_done, run.progress_total, run.progress_percent) == (3, 3, 100)
    assert run.started_at and run.ended_at and run.max_severity == Severity.INFO
    assert texts(run) == ["all good"]


def test_job_that_raises_fails_with_traceback_and_next_run_still_happens(
    tenant: Tenant,
) -> None:
    s = services.save_schedule("test.raise", None, EVERY_10, now=NOW)
    services.tick(NOW + timedelta(minutes=10))
    run = JobRun.objects.get()
    assert execute_run(run.pk) == JobRun.Status.FAILED
    run.refresh_from_db()
    assert run.max_severity == Severity.ERROR
    assert "ValueError: boom in the job" in run.traceback
    error = JobMessage.objects.get(run=run, severity=Severity.ERROR).text
    assert "Traceback" in error and "boom in the job" in error
    assert services.tick(NOW + timedelta(minutes=20)).queued == [s.pk]
    assert JobRun.objects.filter(status=JobRun.Status.QUEUED).count() == 1


def test_a_failure_the_job_explained_gets_no_traceback(tenant: Tenant) -> None:
    run = services.run_now("test.job_failed")
    assert execute_run(run.pk) == JobRun.Status.FAILED
    run.refresh_from_db()
    assert run.max_severity == Severity.ERROR and run.traceback == ""
    errors = list(
        JobMessage.objects.filter(run=run, severity=Severity.ERROR).values_list("text", flat=True)
    )
    assert errors == ["The server refused the password of archive@example.com."]


def test_a_failure_the_job_did_not_explain_is_logged_by_its_text(tenant: Tenant) -> None:
    run = services.run_now("test.job_failed_silent")
    assert execute_run(run.pk) == JobRun.Status.FAILED
    run.refresh_from_db()
    assert run.traceback == ""
    assert texts(run) == ["connecting", "The server imap.example.com cannot be reached."]


def test_job_that_hangs_is_timed_out_cancelled_and_logged(tenant: Tenant) -> None:
    run = services.run_now("test.hang")
    assert execute_run(run.pk) == JobRun.Status.CANCELLED
    run.refresh_from_db()
    assert run.max_severity == Severity.ERROR
    assert any("Timed out after 1 s" in t for t in texts(run))


def test_cancel_stops_at_a_safe_point(tenant: Tenant) -> None:
    run = services.run_now("test.cancel_self")
    assert execute_run(run.pk) == JobRun.Status.CANCELLED
    run.refresh_from_db()
    assert run.cancel_requested and run.progress_done == 1
    got = texts(run)
    assert "still running until the safe point" in got and "never reached" not in got
    assert any("Cancelled on request" in t for t in got)


def test_cancel_of_a_queued_run_ends_it_and_the_worker_does_not_start_it(
    tenant: Tenant,
) -> None:
    run = services.run_now("test.ok")
    services.cancel(run, by="bob")
    assert run.status == JobRun.Status.CANCELLED
    assert execute_run(run.pk) == JobRun.Status.CANCELLED
    assert "all good" not in texts(run)


def test_configuration_name_resolved_and_schedules_deleted_with_it(tenant: Tenant) -> None:
    group = Group.objects.create(name="Sales")
    s = services.save_schedule("test.config", group, EVERY_10, now=NOW)
    run = services.run_schedule_now(s)
    assert run.config_name == "Sales"
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    assert texts(run) == ["configuration Sales"]
    group.delete()
    assert not Schedule.objects.filter(pk=s.pk).exists()
    run.refresh_from_db()
    assert run.config_name == "Sales" and run.schedule is None  # log keeps the name


def test_run_of_a_deleted_configuration_fails_clearly(tenant: Tenant) -> None:
    group = Group.objects.create(name="Gone")
    run = services.run_now("test.config", group)
    Group.objects.filter(pk=group.pk).delete()
    assert execute_run(run.pk) == JobRun.Status.FAILED
    assert any("no longer exists" in t for t in texts(run))


def test_reaper_fails_runs_without_heartbeat(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING, heartbeat_at=NOW)
    assert reap_lost_runs(NOW + timedelta(seconds=30), lost_after=60) == 0
    with tenant_context(None), override_settings(MAILVAULT_JOB_LOST_AFTER_SECONDS=60):
        # The scheduler reaps, outside any tenant.
        assert services.tick(NOW + timedelta(seconds=61)).reaped == 1
    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert any("Worker lost" in t for t in texts(run))


def test_process_log_filters_json_prune_dashboard(tenant: Tenant) -> None:
    ok = services.run_now("test.ok")
    execute_run(ok.pk)
    bad = services.run_now("test.raise")
    execute_run(bad.pk)
    queued = services.run_now("test.side_effect", Group.objects.create(name="q"))
    f = services.LogFilter
    assert set(services.list_runs(f(process_type="test.raise"))) == {bad}
    assert set(services.list_runs(f(min_severity=Severity.ERROR))) == {bad}
    assert set(services.list_runs(f(finished=False))) == {queued}
    assert set(services.list_runs(f(finished=True))) == {ok, bad}
    assert set(services.list_runs(f(request_id=str(ok.request_id)[:8]))) == {ok}
    ok.refresh_from_db()
    later = ok.created_at + timedelta(hours=1)
    assert set(services.list_runs(f(since=later))) == set()
    data = json.loads(json.dumps(services.to_json(ok)))
    assert data["status"] == "finished" and data["messages"][0]["text"] == "all good"
    assert data["request_id"] == str(ok.request_id)
    board = services.dashboard(ok.created_at + timedelta(hours=1))
    assert [r.pk for r in board.failed] == [bad.pk] and board.running == []
    assert services.dashboard(ok.created_at + timedelta(hours=25)).failed == []
    assert services.prune(ok.created_at + timedelta(days=1)) == 2
    assert list(JobRun.objects.all()) == [queued]  # unfinished runs are kept


def test_process_log_is_tenant_scoped(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    other = Tenant.objects.create(name="jobs-b")
    with tenant_context(other):
        assert list(services.list_runs()) == []
        assert services.prune(NOW.replace(year=2100)) == 0
    assert list(services.list_runs()) == [run]


def test_prune_process_log_type_is_registered_and_runs(tenant: Tenant) -> None:
    run = services.run_now("maintenance.prune_process_log")
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    assert any("older than 90 days" in t for t in texts(run))


def test_tick_spans_tenants_and_a_broken_schedule_does_not_stall_others(
    tenant: Tenant,
) -> None:
    mine = services.save_schedule("test.ok", None, EVERY_10, now=NOW)
    broken = Schedule.objects.create(
        process_type="test.ok", kind="daily", at_time="01:00", time_zone="Bad/Zone", next_run_at=NOW
    )
    other = Tenant.objects.create(name="jobs-b")
    with tenant_context(other):
        theirs = services.save_schedule("test.ok", None, EVERY_10, now=NOW)
    with tenant_context(None):
        result = services.tick(NOW + timedelta(minutes=10))
    assert sorted(result.queued) == sorted([mine.pk, theirs.pk])
    assert broken.pk in result.skipped
    broken.refresh_from_db()
    assert broken.next_run_at is None  # moved out of the way instead of retried forever
    assert JobRun.objects.count() == 1  # this tenant's run only, seen from this tenant
    with tenant_context(other):
        assert JobRun.objects.get().schedule_id == theirs.pk


def test_once_runs_once_then_disables(tenant: Tenant) -> None:
    at = NOW + timedelta(minutes=2)
    s = services.save_schedule("test.ok", None, Recurrence(Kind.ONCE, "UTC", run_at=at), now=NOW)
    assert s.next_run_at == at and s.description == "Once at 2026-03-29 00:02 (UTC)"
    assert services.tick(at).queued == [s.pk]
    s.refresh_from_db()
    assert (s.enabled, s.next_run_at) == (False, None)
    assert services.tick(at + timedelta(days=1)).queued == []
    with pytest.raises(RecurrenceError, match="1 minute in the future"):
        services.set_enabled(s, True, now=at + timedelta(minutes=1))


def _fire_times(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Tick a scheduler from start to end; the times at which it queued a run."""
    fired, clock = [], start
    while clock < end:
        if services.tick(clock).queued:
            fired.append(clock)
            JobRun.objects.update(status=JobRun.Status.FINISHED)
        clock += step
    return fired


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (
            datetime(2026, 3, 28, 12, tzinfo=UTC),  # spring forward: 02:30 is 03:00 CEST, once
            [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)],
        ),
        (
            datetime(2026, 10, 24, 12, tzinfo=UTC),  # fall back: the first 02:30 only
            [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)],
        ),
    ],
)
def test_berlin_daily_schedule_over_dst_with_controlled_clock(
    tenant: Tenant, start: datetime, expected: list[datetime]
) -> None:
    rec = Recurrence(Kind.DAILY, "Europe/Berlin", at_time="02:30")
    s = services.save_schedule("test.ok", None, rec, now=start)
    assert _fire_times(start, start + timedelta(days=2), timedelta(minutes=10)) == expected
    assert s.description == "Daily at 02:30 (Europe/Berlin)"


def test_reaper_fails_a_run_whose_worker_died_between_claim_and_start(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    claimed_at = timezone.now()
    # A worker claimed the queue task, then died before the run started.
    DBTaskResult.objects.filter(pk=run.task_result_id).update(
        status=TaskResultStatus.RUNNING, started_at=claimed_at
    )
    later = claimed_at + timedelta(seconds=30)
    assert reap_lost_runs(later, lost_after=60) == 0  # not yet overdue
    assert reap_lost_runs(later + timedelta(seconds=60), lost_after=60) == 1
    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert any("never started" in t for t in texts(run))
    task = DBTaskResult.objects.get(pk=run.task_result_id)
    assert task.status == TaskResultStatus.FAILED


def test_reaper_leaves_a_run_that_waits_for_a_free_worker(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    assert reap_lost_runs(timezone.now() + timedelta(hours=1), lost_after=60) == 0
    run.refresh_from_db()
    assert run.status == JobRun.Status.QUEUED
