"""Admin Access > Compliance: Retention Policies and Legal Holds."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.archive.models import Message
from mailvault.compliance import approvals, holds, retention
from mailvault.compliance.jobs import RETENTION
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy
from mailvault.jobs import services as job_services
from mailvault.jobs.models import JobRun, Schedule
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.forms_compliance import (
    LegalHoldForm,
    ReleaseForm,
    RetentionPolicyForm,
    RetentionSettingsForm,
)
from mailvault.web.views.admin_jobs import schedule_dialog_url

DRY_RUN_SHOWN = 200


@admin_view
@require_http_methods(["GET", "POST"])
def retention_list(request: HttpRequest) -> HttpResponse:
    retention.ensure_default_policy()
    config = retention.settings()
    form = RetentionSettingsForm(request.POST or None, instance=config)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Retention settings saved.")
        return redirect("adminaccess:retention_policies")
    config_type = type(config)._meta.label_lower
    last_run = (
        JobRun.objects.filter(process_type=RETENTION, config_id=str(config.pk))
        .order_by("-created_at", "-pk")
        .first()
    )
    return render(
        request,
        "web/admin/compliance/retention_policies.html",
        {
            "policies": RetentionPolicy.objects.all(),
            "form": form,
            "schedules": Schedule.objects.filter(config_type=config_type, config_id=str(config.pk)),
            "schedule_url": schedule_dialog_url(RETENTION, config),
            "here": reverse("adminaccess:retention_policies"),
            "last_run": last_run,
        },
    )


@admin_view
@require_http_methods(["GET", "POST"])
def retention_edit(request: HttpRequest, policy_id: int | None = None) -> HttpResponse:
    policy = (
        get_object_or_404(RetentionPolicy.objects, pk=policy_id)
        if policy_id is not None
        else RetentionPolicy()
    )
    form = RetentionPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        try:
            retention.save_policy(form.save(commit=False), actor=signed_in_user(request))
        except retention.PolicyError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, f"Retention policy {policy.name} saved.")
            return redirect("adminaccess:retention_policies")
    return render(
        request,
        "web/admin/compliance/retention_form.html",
        {"form": form, "policy": policy, "creating": policy_id is None},
    )


@admin_view
@require_POST
def retention_delete(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = get_object_or_404(RetentionPolicy.objects, pk=policy_id)
    try:
        retention.delete_policy(policy, actor=signed_in_user(request))
    except retention.PolicyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Retention policy {policy.name} deleted.")
    return redirect("adminaccess:retention_policies")


@admin_view
@require_POST
def retention_run_now(request: HttpRequest) -> HttpResponse:
    try:
        run = job_services.run_now(
            RETENTION, retention.settings(), triggered_by=signed_in_user(request).username
        )
    except job_services.AlreadyRunning as exc:
        run = exc.run
        messages.info(request, "The retention policies are being applied already.")
    return redirect("adminaccess:run_detail", run_id=run.pk)


@admin_view
@require_GET
def retention_dry_run(request: HttpRequest) -> HttpResponse:
    report = retention.run(dry_run=True)
    shown = Message.objects.filter(pk__in=report.would_delete[:DRY_RUN_SHOWN]).order_by("pk")
    return render(
        request,
        "web/admin/compliance/retention_dry_run.html",
        {
            "report": report,
            "shown": shown,
            "held": sum(1 for r in report.refused.values() if r == "under legal hold"),
            "young": sum(1 for r in report.refused.values() if r != "under legal hold"),
        },
    )


@admin_view
@require_http_methods(["GET", "POST"])
def hold_list(request: HttpRequest) -> HttpResponse:
    form = LegalHoldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hold = form.create_hold(signed_in_user(request))
        if hold is not None:
            messages.success(request, f"Legal hold {hold.name} is in force.")
            return redirect("adminaccess:legal_holds")
    return render(
        request,
        "web/admin/compliance/legal_holds.html",
        {
            "holds": LegalHold.objects.select_related("mailbox"),
            "form": form,
            "release_form": ReleaseForm(),
        },
    )


@admin_view
@require_POST
def hold_release(request: HttpRequest, hold_id: int) -> HttpResponse:
    hold = get_object_or_404(LegalHold.objects, pk=hold_id)
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason for the release.")
        return redirect("adminaccess:legal_holds")
    try:
        outcome = approvals.request_release(
            signed_in_user(request), hold, form.cleaned_data["reason"]
        )
    except (approvals.ApprovalError, holds.HoldError) as exc:
        messages.error(request, str(exc))
    else:
        if outcome.done:
            messages.success(request, f"Legal hold {hold.name} released.")
        else:
            messages.info(
                request, f"The release of {hold.name} waits for a Compliance user's approval."
            )
    return redirect("adminaccess:legal_holds")
