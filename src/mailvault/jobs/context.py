"""What a running job sees: log, progress and cooperative cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db.models import Case, F, PositiveSmallIntegerField, Value, When
from django.utils import timezone

from mailvault.jobs.models import JobMessage, JobRun, Severity
from mailvault.tenancy.context import tenant_context

if TYPE_CHECKING:
    from django.db import models

    from mailvault.jobs.registry import ProcessType


class Cancelled(Exception):
    """Raised at a safe point when the run was cancelled; the job should just let it fly."""


class TimedOut(Cancelled):
    """Raised at a safe point when the run exceeded its process type's timeout."""


class JobFailed(Exception):
    """A run that cannot go on for a reason the administrator can act on (wrong
    credentials, an unreachable server, a vanished mailbox). The job says why with
    ``ctx.error`` before raising it; the runner then marks the run failed without adding a
    Python traceback to the process log (it writes the exception's text only if the job
    logged no error)."""


def add_message(run: JobRun, severity: int, text: str) -> JobMessage:
    """Append a sub-message and raise the run's maximum severity if needed."""
    # The run's own tenant: the reaper and the watchdog thread run outside any request.
    with tenant_context(run.tenant):
        message = JobMessage.unscoped.create(
            run=run, at=timezone.now(), severity=severity, text=text
        )
    JobRun.unscoped.filter(pk=run.pk).update(
        max_severity=Case(
            When(max_severity__lt=severity, then=Value(severity)),
            default=F("max_severity"),
            output_field=PositiveSmallIntegerField(),
        )
    )
    run.max_severity = max(run.max_severity, severity)
    return message


class JobContext:
    """Handed to a process type's function.

    ``check_cancelled()`` is the job's safe point: call it between units of work. It raises
    :class:`Cancelled` after a cancel request and :class:`TimedOut` after the type's timeout.
    """

    def __init__(
        self,
        run: JobRun,
        ptype: ProcessType,
        config: models.Model | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cancel_poll_seconds: float = 1.0,
        progress_min_seconds: float = 0.5,
    ) -> None:
        self.run = run
        self.process_type = ptype
        self.config = config
        self._clock = clock
        self._started = clock()
        self.deadline = self._started + ptype.timeout_seconds
        self._cancel_poll = cancel_poll_seconds
        self._last_poll: float | None = None
        self._progress_min = progress_min_seconds
        self._last_progress: float | None = None

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def log(self, severity: int, text: str) -> None:
        add_message(self.run, severity, text)

    def info(self, text: str) -> None:
        self.log(Severity.INFO, text)

    def warning(self, text: str) -> None:
        self.log(Severity.WARNING, text)

    def error(self, text: str) -> None:
        self.log(Severity.ERROR, text)

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Record progress; writes are throttled except for the final one (or ``force``)."""
        now = self._clock()
        final = force or (total is not None and done >= total)
        if (
            not final
            and self._last_progress is not None
            and now - self._last_progress < self._progress_min
        ):
            return
        self._last_progress = now
        self.run.progress_done, self.run.progress_total = done, total
        JobRun.unscoped.filter(pk=self.run.pk).update(progress_done=done, progress_total=total)

    def check_cancelled(self) -> None:
        now = self._clock()
        if now > self.deadline:
            raise TimedOut(
                f"Timed out after {self.process_type.timeout_seconds} s "
                f"(the timeout of {self.process_type.display_name})"
            )
        if self._last_poll is None or now - self._last_poll >= self._cancel_poll:
            self._last_poll = now
            if JobRun.unscoped.filter(pk=self.run.pk, cancel_requested=True).exists():
                raise Cancelled("Cancelled on request")
