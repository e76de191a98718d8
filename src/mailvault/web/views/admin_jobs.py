"""Admin Access > Archiving > Schedules, the schedule dialog, and Compliance > Process Log.

The schedule dialog is one generic view for every process type: its URL names the type
and the configuration (``-`` for a type without one). It is served as a fragment into a
``<dialog>`` when HTMX asks, and as a plain page otherwise. The process log list and
an entry's detail poll themselves (HTMX, every second) while a shown run is unfinished.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.jobs import registry, services
from mailvault.jobs.models import JobRun, Schedule
from mailvault.jobs.recurrence import RecurrenceError, zone
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.forms_jobs import LogFilterForm, ScheduleForm, default_zone

NO_CONFIG = "-"  # the config_id of a process type without configuration
POLL_SECONDS = 1


# --- helpers --------------------------------------------------------------------------


def next_url(request: HttpRequest, default: str) -> str:
    """Where to go back to: a same-site ``next`` parameter, else ``default``."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def _ptype_or_404(name: str) -> registry.ProcessType:
    try:
        return registry.get(name)
    except registry.UnknownProcessType:
        raise Http404("Unknown process type") from None


def _config_or_404(ptype: registry.ProcessType, config_id: str) -> models.Model | None:
    """The active tenant's configuration (a foreign or missing id is a 404)."""
    if ptype.config_model is None:
        if config_id != NO_CONFIG:
            raise Http404("This process type takes no configuration")
        return None
    if config_id == NO_CONFIG:
        raise Http404("This process type needs a configuration")
    try:
        return ptype.load_config(config_id)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise Http404("No such configuration") from None


def schedule_dialog_url(process_type: str, config: models.Model | None) -> str:
    config_id = NO_CONFIG if config is None else str(config.pk)
    return reverse(
        "adminaccess:schedule_new", kwargs={"process_type": process_type, "config_id": config_id}
    )


def local(value: datetime | None, tz_name: str) -> str:
    """A time as the schedule's zone reads it, e.g. "2026-03-29 03:00 CEST"."""
    if value is None:
        return "—"
    try:
        return value.astimezone(zone(tz_name)).strftime("%Y-%m-%d %H:%M %Z")
    except RecurrenceError:
        return value.strftime("%Y-%m-%d %H:%M UTC")


def is_htmx(request: HttpRequest) -> bool:
    """Whether HTMX asked (django-htmx's middleware sets ``request.htmx``)."""
    return bool(getattr(request, "htmx", False))


def _username(request: HttpRequest) -> str:
    return signed_in_user(request).username


# --- schedules ------------------------------------------------------------------------


@admin_view
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    last_run = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-created_at", "-pk")
    schedules = Schedule.objects.annotate(
        last_status=Subquery(last_run.values("status")[:1]),
        last_run_id=Subquery(last_run.values("pk")[:1]),
    ).order_by("process_type", "config_type", "config_id", "pk")
    rows = []
    for s in schedules:
        try:
            ptype: registry.ProcessType | None = registry.get(s.process_type)
        except registry.UnknownProcessType:
            ptype = None
        rows.append(
            {
                "schedule": s,
                "type_name": registry.display_name(s.process_type),
                "config_name": (
                    services.resolve_config_name(ptype, s.config_id) if ptype else s.config_id
                ),
                "next_run": local(s.next_run_at, s.time_zone) if s.enabled else "—",
                "last_run": local(s.last_run_at, s.time_zone) if s.last_run_at else "—",
            }
        )
    configless = [
        (p, schedule_dialog_url(p.name, None))
        for p in registry.all_types()
        if p.config_model is None
    ]
    return render(
        request,
        "web/admin/schedules.html",
        {"rows": rows, "configless": configless, "here": request.get_full_path()},
    )


@admin_view
@require_http_methods(["GET", "POST"])
def schedule_new(request: HttpRequest, process_type: str, config_id: str) -> HttpResponse:
    ptype = _ptype_or_404(process_type)
    config = _config_or_404(ptype, config_id)
    return _schedule_dialog(request, ptype, config, None)


@admin_view
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects, pk=schedule_id)
    ptype = _ptype_or_404(schedule.process_type)
    try:
        config = ptype.load_config(schedule.config_id)
    except (ObjectDoesNotExist, ValueError):
        raise Http404("The schedule's configuration no longer exists") from None
    return _schedule_dialog(request, ptype, config, schedule)


def _schedule_dialog(
    request: HttpRequest,
    ptype: registry.ProcessType,
    config: models.Model | None,
    schedule: Schedule | None,
) -> HttpResponse:
    now = timezone.now()
    back = next_url(request, reverse("adminaccess:schedules"))
    if request.method == "POST":
        form = ScheduleForm(request.POST, now=now)
        if form.is_valid() and form.recurrence is not None:
            try:
                schedule = services.save_schedule(
                    ptype.name,
                    config,
                    form.recurrence,
                    now=now,
                    enabled=form.cleaned_data["enabled"],
                    schedule=schedule,
                )
            except RecurrenceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                return _schedule_saved(request, ptype, config, schedule, back)
    elif schedule is not None:
        form = ScheduleForm(initial=ScheduleForm.initial_for(schedule), now=now)
    else:
        form = ScheduleForm(initial={"time_zone": "", "enabled": True}, now=now)
    action = (
        reverse("adminaccess:schedule_edit", kwargs={"schedule_id": schedule.pk})
        if schedule is not None and schedule.pk
        else schedule_dialog_url(ptype.name, config)
    )
    context: dict[str, Any] = {
        "form": form,
        "ptype": ptype,
        "config_name": ptype.resolve_name(config) if config is not None else "",
        "schedule": schedule,
        "next_run": local(schedule.next_run_at, schedule.time_zone) if schedule else "",
        "action": action,
        "back": back,
        "default_zone": default_zone(),
        "creating": schedule is None,
    }
    if is_htmx(request):
        return render(request, "web/admin/_schedule_form.html", context)
    return render(request, "web/admin/schedule_page.html", context)


def _schedule_saved(
    request: HttpRequest,
    ptype: registry.ProcessType,
    config: models.Model | None,
    schedule: Schedule,
    back: str,
) -> HttpResponse:
    next_run = local(schedule.next_run_at, schedule.time_zone) if schedule.enabled else "—"
    if is_htmx(request):
        context = {
            "schedule": schedule,
            "ptype": ptype,
            "config_name": ptype.resolve_name(config) if config is not None else "",
            "next_run": next_run,
            "back": back,
        }
        return render(request, "web/admin/_schedule_saved.html", context)
    state = f"Next run: {next_run}." if schedule.enabled else "It is disabled."
    messages.success(request, f"Schedule saved: {schedule.description}. {state}")
    return redirect(back)


@admin_view
@require_POST
def schedule_run_now(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects, pk=schedule_id)
    try:
        run = services.run_schedule_now(schedule, triggered_by=_username(request))
    except services.AlreadyRunning as exc:
        messages.error(request, str(exc))
        return redirect("adminaccess:run_detail", run_id=exc.run.pk)
    except (ObjectDoesNotExist, registry.UnknownProcessType) as exc:
        messages.error(request, f"Cannot run this schedule: {exc}")
        return redirect(next_url(request, reverse("adminaccess:schedules")))
    messages.success(request, f"{registry.display_name(run.process_type)} queued.")
    return redirect("adminaccess:run_detail", run_id=run.pk)


@admin_view
@require_POST
def schedule_set_enabled(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects, pk=schedule_id)
    enable = request.POST.get("enabled") == "1"
    try:
        services.set_enabled(schedule, enable, now=timezone.now())
    except RecurrenceError as exc:
        messages.error(request, f"Cannot enable this schedule: {exc}")
    else:
        messages.success(request, f"Schedule {'enabled' if enable else 'disabled'}.")
    return redirect(next_url(request, reverse("adminaccess:schedules")))


@admin_view
@require_POST
def schedule_delete(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects, pk=schedule_id)
    description = schedule.description
    schedule.delete()
    messages.success(request, f"Schedule deleted ({description}).")
    return redirect(next_url(request, reverse("adminaccess:schedules")))


# --- process log ----------------------------------------------------------------------


def _log_filter(form: LogFilterForm) -> services.LogFilter:
    if not form.is_valid():
        return services.LogFilter()
    data = form.cleaned_data
    finished = {"finished": True, "unfinished": False}.get(data.get("finished") or "")
    return services.LogFilter(
        process_type=data.get("process_type") or "",
        request_id=data.get("request_id") or "",
        min_severity=int(data["min_severity"]) if data.get("min_severity") else None,
        since=data.get("since"),
        until=data.get("until"),
        finished=finished,
    )


@admin_view
@require_GET
def process_log(request: HttpRequest) -> HttpResponse:
    form = LogFilterForm(request.GET)
    paginator = Paginator(services.list_runs(_log_filter(form)), 50)
    page = paginator.get_page(request.GET.get("page"))
    runs = list(page.object_list)
    for run in runs:
        run.type_name = registry.display_name(run.process_type)
    context = {
        "form": form,
        "page": page,
        "runs": runs,
        "polling": any(not r.is_finished for r in runs),
        "poll_seconds": POLL_SECONDS,
        "poll_url": request.get_full_path(),
    }
    if is_htmx(request):
        return render(request, "web/admin/_process_log_table.html", context)
    return render(request, "web/admin/process_log.html", context)


def _run_context(run: JobRun) -> dict[str, Any]:
    return {
        "run": run,
        "type_name": registry.display_name(run.process_type),
        "run_messages": list(run.messages.all()),
        "polling": not run.is_finished,
        "poll_seconds": POLL_SECONDS,
    }


@admin_view
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(JobRun.objects, pk=run_id)
    context = _run_context(run)
    if is_htmx(request):
        return render(request, "web/admin/_run_live.html", context)
    return render(request, "web/admin/run_detail.html", context)


@admin_view
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(JobRun.objects, pk=run_id)
    if run.is_finished:
        messages.info(request, f"The run had already ended ({run.get_status_display()}).")
    else:
        run = services.cancel(run, by=_username(request))
    if is_htmx(request):
        return render(request, "web/admin/_run_live.html", _run_context(run))
    return redirect("adminaccess:run_detail", run_id=run.pk)


@admin_view
def run_json(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(JobRun.objects, pk=run_id)
    return JsonResponse(services.to_json(run), json_dumps_params={"indent": 2})
