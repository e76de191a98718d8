"""Schedules, job runs (the process log) and their messages."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q

from mailvault.jobs.recurrence import Kind, Recurrence, describe
from mailvault.tenancy.models import TenantOwned


class Severity(models.IntegerChoices):
    INFO = 20, "Info"
    WARNING = 30, "Warning"
    ERROR = 40, "Error"


class Schedule(TenantOwned):
    """When a configuration's process runs. The configuration is a (model label, pk) pair
    so any app's configuration can be scheduled without a foreign key to it; deleting the
    configuration deletes its schedules (see :mod:`mailvault.jobs.signals`)."""

    process_type = models.CharField(max_length=100)
    config_type = models.CharField(max_length=100, blank=True, default="")
    config_id = models.CharField(max_length=64, blank=True, default="")

    kind = models.CharField(max_length=20, choices=[(k.value, k.value) for k in Kind])
    time_zone = models.CharField(max_length=64, default="UTC")
    run_at = models.DateTimeField(null=True, blank=True)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    minute = models.PositiveSmallIntegerField(null=True, blank=True)
    at_time = models.CharField(max_length=5, blank=True, default="")
    weekdays = models.JSONField(default=list, blank=True)
    day_of_month = models.PositiveSmallIntegerField(null=True, blank=True)

    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_run_at", "pk"]
        indexes = [
            models.Index(fields=["enabled", "next_run_at"]),
            models.Index(fields=["config_type", "config_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.process_type} {self.kind}"

    @property
    def recurrence(self) -> Recurrence:
        return Recurrence(
            kind=Kind(self.kind),
            time_zone=self.time_zone,
            run_at=self.run_at,
            interval_minutes=self.interval_minutes,
            minute=self.minute,
            at_time=self.at_time or None,
            weekdays=frozenset(int(d) for d in self.weekdays or []),
            day_of_month=self.day_of_month,
        )

    @property
    def description(self) -> str:
        """E.g. "Daily at 02:30 (Europe/Berlin)", for lists and the dialog."""
        return describe(self.recurrence)

    def set_recurrence(self, rec: Recurrence) -> None:
        self.kind = rec.kind.value
        self.time_zone = rec.time_zone
        self.run_at = rec.run_at
        self.interval_minutes = rec.interval_minutes
        self.minute = rec.minute
        self.at_time = rec.at_time or ""
        self.weekdays = sorted(rec.weekdays)
        self.day_of_month = rec.day_of_month


class JobRun(TenantOwned):
    """One entry of the process log: one run of a process, from queue to end."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    process_type = models.CharField(max_length=100)
    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    config_type = models.CharField(max_length=100, blank=True, default="")
    config_id = models.CharField(max_length=64, blank=True, default="")
    config_name = models.CharField(max_length=300, blank=True, default="")
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    triggered_by = models.CharField(max_length=150, blank=True, default="")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    max_severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.INFO)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=64, blank=True, default="")
    task_result_id = models.CharField(max_length=64, blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["created_at"]),
            models.Index(fields=["config_type", "config_id", "status"]),
        ]
        constraints = [
            # The database itself guarantees one running run per configuration.
            models.UniqueConstraint(
                fields=["tenant", "process_type", "config_type", "config_id"],
                condition=Q(status="running"),
                name="jobs_one_running_run_per_configuration",
            )
        ]

    def __str__(self) -> str:
        return f"{self.process_type} {self.request_id} {self.status}"

    @property
    def progress_percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, int(self.progress_done * 100 // self.progress_total))

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    def config_ref(self) -> tuple[str, str]:
        return self.config_type, self.config_id


class JobMessage(TenantOwned):
    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="messages")
    at = models.DateTimeField()
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    text = models.TextField()

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_severity_display()}: {self.text[:60]}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.at.isoformat(),
            "severity": Severity(self.severity).label.lower(),
            "text": self.text,
        }
