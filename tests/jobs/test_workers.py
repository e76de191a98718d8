"""Real worker processes: the db worker claiming tasks, SIGKILL, hard timeout, DB outage.

The process tests need PostgreSQL (the ``pg_only`` fixture, see conftest); the first
test runs the worker loop in-process and works on SQLite too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from jobs.conftest import pg_test_database_url
from mailvault.accounts.models import Group
from mailvault.jobs import services
from mailvault.jobs.management.commands.worker import RecoveringWorker
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import reap_lost_runs
from mailvault.tenancy.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)
WORKER_MAIN = str(Path(__file__).with_name("worker_main.py"))


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def status(run: JobRun) -> str:
    run.refresh_from_db(fields=["status"])
    return run.status


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = {
            **os.environ,
            "DATABASE_URL": pg_test_database_url(),
            "MAILVAULT_VAR_DIR": str(tmp_path),
            "MAILVAULT_JOB_HEARTBEAT_SECONDS": "1",
            "MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS": "1",
            **(env or {}),
        }
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, WORKER_MAIN, *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:  # each in its own session: end the worker and any child of it
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a restarted child that outlived it


def test_worker_in_process_runs_queued_job(tenant: Tenant) -> None:
    run = services.run_now("test.ok")
    RecoveringWorker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="w-inproc",
    ).run()
    assert status(run) == JobRun.Status.FINISHED
    run.refresh_from_db()
    assert run.worker_id == "w-inproc"
    assert DBTaskResult.objects.get(pk=run.task_result_id).status == TaskResultStatus.SUCCESSFUL


def test_scheduler_command_queues_due_schedule(tenant: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from mailvault.jobs.models import Schedule
    from mailvault.jobs.recurrence import Kind, Recurrence

    s = services.save_schedule(
        "test.ok",
        None,
        Recurrence(Kind.EVERY_N_MINUTES, interval_minutes=5),
        now=timezone.now() - timedelta(minutes=6),
    )
    call_command("scheduler", "--once")
    assert JobRun.objects.filter(schedule=s, status=JobRun.Status.QUEUED).count() == 1
    assert Schedule.objects.get(pk=s.pk).next_run_at > timezone.now()


def test_two_worker_processes_run_each_of_50_jobs_exactly_once(
    tenant: Tenant, pg_only: None, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    groups = [Group.objects.create(name=f"g{i:02}") for i in range(50)]
    workers = [
        spawn("worker", "--in-process", "--interval", "0.05", "--worker-id", f"w{i}")
        for i in range(2)
    ]
    time.sleep(2)  # let both come up, so they really race for the same due jobs
    runs = [services.run_now("test.side_effect", g) for g in groups]
    wait_for(
        lambda: not JobRun.objects.filter(status__in=JobRun.UNFINISHED).exists(),
        what="all 50 runs to end",
    )
    assert all(w.poll() is None for w in workers)
    assert set(JobRun.objects.values_list("status", flat=True)) == {JobRun.Status.FINISHED}
    per_run = [JobMessage.objects.filter(run=r, text="side effect").count() for r in runs]
    assert per_run == [1] * 50
    assert JobMessage.objects.filter(text="side effect").count() == 50
    assert set(JobRun.objects.values_list("worker_id", flat=True)) == {"w0", "w1"}
    for result in DBTaskResult.objects.all():
        assert len(result.worker_ids) == 1 and result.status == TaskResultStatus.SUCCESSFUL


def test_sigkill_mid_job_is_reaped_and_a_later_worker_proceeds(
    tenant: Tenant, pg_only: None, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn("worker", "--in-process", "--interval", "0.1", "--worker-id", "doomed")
    slow = services.run_now("test.slow")
    wait_for(lambda: status(slow) == JobRun.Status.RUNNING, what="the slow run to start")
    time.sleep(3)
    assert reap_lost_runs(lost_after=2) == 0  # alive: its heartbeat is fresh
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert status(slow) == JobRun.Status.RUNNING  # nobody is left to say otherwise …
    time.sleep(3)
    assert reap_lost_runs(lost_after=2) == 1  # … until the reaper does
    assert status(slow) == JobRun.Status.FAILED
    assert JobMessage.objects.filter(run=slow, text__startswith="Worker lost").exists()
    slow.refresh_from_db()
    assert DBTaskResult.objects.get(pk=slow.task_result_id).status == TaskResultStatus.FAILED
    # A later worker runs the next job, and the killed one is not run again.
    after = services.run_now("test.ok")
    spawn("worker", "--in-process", "--interval", "0.1", "--worker-id", "later")
    wait_for(lambda: status(after) == JobRun.Status.FINISHED, what="the later run")
    assert status(slow) == JobRun.Status.FAILED
    assert not JobMessage.objects.filter(run=slow, text="slow started").count() > 1


def test_job_ignoring_its_timeout_fails_and_supervised_worker_restarts(
    tenant: Tenant, pg_only: None, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    supervisor = spawn("worker", "--interval", "0.1")
    hung = services.run_now("test.hang_hard")
    wait_for(lambda: status(hung) == JobRun.Status.FAILED, timeout=30, what="hard timeout")
    text = JobMessage.objects.filter(run=hung).values_list("text", flat=True)
    assert any("did not stop at a safe point" in t and "restarts" in t for t in text), list(text)
    nxt = services.run_now("test.ok")
    wait_for(
        lambda: status(nxt) == JobRun.Status.FINISHED,
        timeout=60,
        what="the restarted worker to run the next job",
    )
    assert supervisor.poll() is None


def test_worker_recovers_when_its_database_connections_are_killed(
    tenant: Tenant,
    pg_only: None,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    worker = spawn("worker", "--in-process", "--interval", "0.1", "--worker-id", "sturdy")
    time.sleep(2)
    for _ in range(3):
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(0.5)
    run = services.run_now("test.ok")
    wait_for(lambda: status(run) == JobRun.Status.FINISHED, what="the run after the outage")
    assert worker.poll() is None
    log = (tmp_path / "worker-0.log").read_text()
    assert "database unavailable" in log
