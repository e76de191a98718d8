"""Journaling problems in the process log (Admin Access > Monitoring > Process log).

The listener runs continuously, not as a job, but what goes wrong with a delivered
message — a report that cannot be unwrapped, a message that cannot be ingested — must
reach the admin. Each batch of a spool segment with problems becomes one finished
process-log entry of type "SMTP journaling" for its endpoint, one line per problem
(warning or error), so it shows in the log, its filters and the dashboard like any run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from mailvault.jobs.context import JobContext, add_message
from mailvault.jobs.models import JobRun, Severity
from mailvault.jobs.registry import process_type
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import tenant_context

log = logging.getLogger("mailvault.smtp")

PROCESS_TYPE = "sources.smtp_journaling"
MAX_LINES = 200  # per entry; the rest is summed up in one line


@dataclass(frozen=True)
class Problem:
    severity: int  # a jobs.models.Severity value
    text: str


@process_type(PROCESS_TYPE, "SMTP journaling", config_model="sources.JournalEndpoint")
def smtp_journaling(ctx: JobContext) -> None:
    """Entries of this type are written by ``mailvault smtpd``; a run queued by hand
    (nothing links to one) only says where journaling happens."""
    ctx.info(
        "Journal reports are received continuously by the SMTP listener (mailvault smtpd); "
        "its problems are logged as entries of this type."
    )


def record_problems(endpoint: JournalEndpoint, problems: list[Problem]) -> JobRun | None:
    """One finished process-log entry listing ``problems``; None when there are none.
    Never raises: the messages are archived already, a log that fails only loses the
    entry (and says so in the process's own log)."""
    if not problems:
        return None
    try:
        now = timezone.now()
        with tenant_context(endpoint.tenant):
            run = JobRun.objects.create(
                process_type=PROCESS_TYPE,
                config_type=JournalEndpoint._meta.label_lower,
                config_id=str(endpoint.pk),
                config_name=endpoint.name,
                triggered_by="SMTP listener",
                status=JobRun.Status.FINISHED,
                started_at=now,
                ended_at=now,
                progress_done=len(problems),
                progress_total=len(problems),
            )
            for problem in problems[:MAX_LINES]:
                add_message(run, problem.severity, problem.text)
            if len(problems) > MAX_LINES:
                worst = max(p.severity for p in problems[MAX_LINES:])
                add_message(run, worst, f"… and {len(problems) - MAX_LINES} more problems.")
        return run
    except Exception:
        log.exception("could not write %d journaling problems to the process log", len(problems))
        for problem in problems:
            log.warning("endpoint %s: %s", endpoint.pk, problem.text)
        return None


__all__ = ["PROCESS_TYPE", "Problem", "Severity", "record_problems"]
