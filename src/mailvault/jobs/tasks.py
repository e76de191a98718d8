"""The one django-tasks task: execute a JobRun. Everything else lives in services."""

from __future__ import annotations

from django.conf import settings
from django_tasks import task
from django_tasks.base import TaskContext

from mailvault.jobs.runner import execute_run, worker_mode


@task(takes_context=True)
def run_job(context: TaskContext, run_id: int) -> str:
    worker_ids = context.task_result.worker_ids
    return execute_run(
        run_id,
        worker_id=worker_ids[-1] if worker_ids else "",
        task_result_id=str(context.task_result.id),
        heartbeat_seconds=(
            settings.MAILVAULT_JOB_HEARTBEAT_SECONDS if worker_mode.active else None
        ),
        hard_exit=worker_mode.hard_exit,
    )
