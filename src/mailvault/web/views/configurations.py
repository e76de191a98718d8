"""What the pages of configurations that run as jobs share (archiving profiles, folder
synchronizations, file imports): list rows with the last run and the schedules of each,
and "run now"."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import models
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobRun, Schedule
from mailvault.web.access import signed_in_user
from mailvault.web.views.admin_jobs import schedule_dialog_url


def configuration_rows(
    configs: models.QuerySet[Any], process_type: str, key: str
) -> list[dict[str, Any]]:
    """One row per configuration: the object under ``key`` (annotated with
    ``last_status`` and ``last_run_id``), its ``schedules`` and its ``schedule_url``."""
    config_type = configs.model._meta.label_lower
    pk_text = Cast(OuterRef("pk"), output_field=CharField())
    last_run = JobRun.objects.filter(
        process_type=process_type, config_type=config_type, config_id=pk_text
    ).order_by("-created_at", "-pk")
    annotated = configs.annotate(
        last_status=Subquery(last_run.values("status")[:1]),
        last_run_id=Subquery(last_run.values("pk")[:1]),
    )
    schedules: dict[str, list[Schedule]] = {}
    for schedule in Schedule.objects.filter(config_type=config_type).order_by("pk"):
        schedules.setdefault(schedule.config_id, []).append(schedule)
    return [
        {
            key: config,
            "schedules": schedules.get(str(config.pk), []),
            "schedule_url": schedule_dialog_url(process_type, config),
        }
        for config in annotated
    ]


def run_now(request: HttpRequest, process_type: str, config: Any, label: str) -> HttpResponse:
    """Queue a run of ``config`` and show it (or the run already under way)."""
    try:
        run = jobs.run_now(process_type, config, triggered_by=signed_in_user(request).username)
    except jobs.AlreadyRunning as exc:
        messages.error(request, str(exc))
        return redirect("adminaccess:run_detail", run_id=exc.run.pk)
    messages.success(request, f"{label} {config.name} queued.")
    return redirect("adminaccess:run_detail", run_id=run.pk)
