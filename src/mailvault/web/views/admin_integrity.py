"""Admin Access > Compliance > Store Verification: verification and the archive digest.

Both are jobs with one configuration per tenant, so they are scheduled with the clock
icon like any other configuration and can be started at once with "Verify now"/"Run now".
"""

from __future__ import annotations

from django.contrib import messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from mailvault.compliance import integrity
from mailvault.compliance.audit import digest
from mailvault.jobs import services
from mailvault.jobs.models import JobRun
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.views.admin_jobs import schedule_dialog_url


def _row(process: str, config: models.Model) -> dict[str, object]:
    label = config._meta.label_lower
    return {
        "config": config,
        "process": process,
        "schedules": list(services.schedules_for(config).order_by("pk")),
        "schedule_url": schedule_dialog_url(process, config),
        "last_run": JobRun.objects.filter(
            process_type=process, config_type=label, config_id=str(config.pk)
        )
        .order_by("-created_at", "-pk")
        .first(),
    }


@admin_view
@require_GET
def integrity_page(request: HttpRequest) -> HttpResponse:
    verification = integrity.verification()
    digest_config = digest.configuration()
    return render(
        request,
        "web/admin/integrity.html",
        {
            "verification": verification,
            "verify_row": _row(integrity.VERIFY_PROCESS, verification),
            "digest_row": _row(digest.DIGEST_PROCESS, digest_config),
            "digest_config": digest_config,
            "here": reverse("adminaccess:integrity"),
        },
    )


def _run(request: HttpRequest, process: str, config: models.Model, label: str) -> HttpResponse:
    try:
        run = services.run_now(process, config, triggered_by=signed_in_user(request).username)
    except services.AlreadyRunning as exc:
        messages.error(request, str(exc))
        return redirect("adminaccess:run_detail", run_id=exc.run.pk)
    messages.success(request, f"{label} queued.")
    return redirect("adminaccess:run_detail", run_id=run.pk)


@admin_view
@require_POST
def integrity_verify_now(request: HttpRequest) -> HttpResponse:
    return _run(request, integrity.VERIFY_PROCESS, integrity.verification(), "Store verification")


@admin_view
@require_POST
def integrity_digest_now(request: HttpRequest) -> HttpResponse:
    return _run(request, digest.DIGEST_PROCESS, digest.configuration(), "Archive digest")
