"""Process types of the jobs app itself."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mailvault.jobs.context import JobContext
from mailvault.jobs.registry import process_type


@process_type("maintenance.prune_process_log", "Process log cleanup", timeout_seconds=15 * 60)
def prune_process_log(ctx: JobContext) -> None:
    """Delete ended process log entries older than MAILVAULT_PROCESS_LOG_RETENTION_DAYS."""
    from mailvault.jobs.services import prune

    days = settings.MAILVAULT_PROCESS_LOG_RETENTION_DAYS
    ctx.check_cancelled()
    deleted = prune(timezone.now() - timedelta(days=days))
    ctx.progress(1, 1)
    ctx.info(f"Deleted {deleted} process log entries older than {days} days.")
