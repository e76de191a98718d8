"""Admin Access > Setup > Setup Wizards: the "Microsoft 365 / Entra ID" wizard.

One page per step; a step's button does the step through :mod:`mailvault.web.wizard`
(which finds and reuses what exists) and comes back to the same page showing what was
created or found, with links to where each object is edited. Connect Tenant reuses the
directory dialog's admin consent flow (a new tab; its answer kept in the session).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from mailvault.accounts.models import Group
from mailvault.directory import entra
from mailvault.jobs.recurrence import zone
from mailvault.web import wizard
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.forms_jobs import default_zone
from mailvault.web.views.admin_directory import CONSENT_KEY, FLOW_RE

TEMPLATES = "web/admin/wizard"
STEP_TITLES = {
    "connect": "Connect the tenant and the directory service",
    "journal": "Journal mailbox and endpoint",
    "archiving": "Archiving profile, run once",
    "folders": "Folder synchronization",
    "access": "Web Access for a group (Reader)",
}
RUN_AT_FORMAT = "%Y-%m-%dT%H:%M"
WIZARD_NAMES = {
    "directory": wizard.DIRECTORY_NAME,
    "directory_every": wizard.DIRECTORY_EVERY_MINUTES,
    "folder_sync_every": wizard.FOLDER_SYNC_EVERY_MINUTES,
    "endpoint": wizard.ENDPOINT_NAME,
    "profile": wizard.PROFILE_NAME,
    "folder_sync": wizard.FOLDER_SYNC_NAME,
}


def _url(step: str) -> str:
    return reverse(f"adminaccess:wizard_m365_{step}")


def _context(step: str, **extra: Any) -> dict[str, Any]:
    state = wizard.state()
    index = wizard.STEPS.index(step)
    steps = [
        {"slug": s, "title": STEP_TITLES[s], "url": _url(s), "done": state.done[s]}
        for s in wizard.STEPS
    ]
    following = wizard.STEPS[index + 1] if index + 1 < len(wizard.STEPS) else None
    return {
        "state": state,
        "step": step,
        "number": index + 1,
        "title": STEP_TITLES[step],
        "steps": steps,
        "next_url": _url(following) if following else reverse("adminaccess:wizard_m365"),
        "next_title": STEP_TITLES[following] if following else "Overview",
        "wizard_names": WIZARD_NAMES,
        "purview_url": wizard.purview_url(),
        **extra,
    }


def _report(request: HttpRequest, result: wizard.StepResult) -> None:
    """What the step made and found, as the messages above the step's page."""
    if result.created:
        messages.success(request, "Created: " + "; ".join(result.created) + ".")
    if result.reused:
        messages.info(request, "Already there, kept: " + "; ".join(result.reused) + ".")


@admin_view
@require_GET
def wizard_list(request: HttpRequest) -> HttpResponse:
    return render(request, f"{TEMPLATES}/list.html", {"state": wizard.state()})


@admin_view
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    state = wizard.state()
    steps = [
        {"slug": s, "title": STEP_TITLES[s], "url": _url(s), "done": state.done[s]}
        for s in wizard.STEPS
    ]
    start = _url(state.next_step) if state.next_step else _url("connect")
    return render(
        request,
        f"{TEMPLATES}/overview.html",
        {"state": state, "steps": steps, "start_url": start},
    )


# --- step 1: Connect Tenant -------------------------------------------------------------


def _consent(request: HttpRequest, flow: str) -> dict[str, str]:
    flows: dict[str, dict[str, str]] = request.session.get(CONSENT_KEY, {})
    return flows.get(flow, {"status": "idle"})


@admin_view
@require_http_methods(["GET", "POST"])
def step_connect(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        tenant_id = ""
        flow = request.POST.get("flow", "")
        info = _consent(request, flow) if FLOW_RE.match(flow) else {"status": "idle"}
        existing = wizard.find_service()
        if info.get("status") == "error":
            error = info.get("error", "Consent was not granted.")
        elif info.get("status") == "done":
            tenant_id = info["tenant"]
        elif existing is not None and request.POST.get("reuse") == "1":
            tenant_id = existing.entra_tenant_id
        else:
            error = (
                "Connect the tenant first: click Connect Tenant and grant consent in the new tab."
            )
        if not error:
            try:
                result = wizard.connect_tenant(
                    tenant_id,
                    now=timezone.now(),
                    time_zone=default_zone(),
                    triggered_by=signed_in_user(request).username,
                )
            except wizard.WizardError as exc:
                error = str(exc)
            else:
                _report(request, result)
                return redirect(_url("connect"))
    context = _context("connect", flow=entra.new_state()[:16], error=error)
    return render(request, f"{TEMPLATES}/connect.html", context, status=400 if error else 200)


@admin_view
@require_GET
def consent_status(request: HttpRequest) -> HttpResponse:
    """Polled by step 1 until the consent tab answered."""
    flow = request.GET.get("flow", "")
    if not FLOW_RE.match(flow):
        raise Http404
    context = {"info": _consent(request, flow), "flow": flow}
    return render(request, f"{TEMPLATES}/_consent_status.html", context)


# --- steps 2 to 5 -----------------------------------------------------------------------


@admin_view
@require_http_methods(["GET", "POST"])
def step_journal(request: HttpRequest) -> HttpResponse:
    error = ""
    address = request.POST.get("address", "") or wizard.default_journal_address()
    if request.method == "POST":
        try:
            result = wizard.setup_journal(address, request.POST.get("display_name", ""))
        except wizard.WizardError as exc:
            error = str(exc)
        else:
            _report(request, result)
            return redirect(_url("journal"))
    display_name = request.POST.get("display_name", wizard.JOURNAL_DISPLAY_NAME)
    context = _context("journal", error=error, address=address, display_name=display_name)
    return render(request, f"{TEMPLATES}/journal.html", context, status=400 if error else 200)


def _run_at(text: str, tz_name: str) -> datetime | None:
    try:
        naive = datetime.strptime(text.strip(), RUN_AT_FORMAT)
    except ValueError:
        return None
    return naive.replace(tzinfo=zone(tz_name))


@admin_view
@require_http_methods(["GET", "POST"])
def step_archiving(request: HttpRequest) -> HttpResponse:
    error = ""
    tz_name = default_zone()
    now = timezone.now()
    run_at_text = request.POST.get("run_at", "") or wizard.default_once_run_at(now).astimezone(
        zone(tz_name)
    ).strftime(RUN_AT_FORMAT)
    if request.method == "POST":
        run_at = _run_at(run_at_text, tz_name)
        if run_at is None:
            error = "Enter the date and time of the run as YYYY-MM-DD HH:MM."
        else:
            try:
                result = wizard.setup_archiving(run_at, now=now, time_zone=tz_name)
            except wizard.WizardError as exc:
                error = str(exc)
            else:
                _report(request, result)
                return redirect(_url("archiving"))
    context = _context("archiving", error=error, run_at=run_at_text, time_zone=tz_name)
    return render(request, f"{TEMPLATES}/archiving.html", context, status=400 if error else 200)


@admin_view
@require_http_methods(["GET", "POST"])
def step_folders(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            result = wizard.setup_folder_sync(now=timezone.now(), time_zone=default_zone())
        except wizard.WizardError as exc:
            error = str(exc)
        else:
            _report(request, result)
            return redirect(_url("folders"))
    context = _context("folders", error=error)
    return render(request, f"{TEMPLATES}/folders.html", context, status=400 if error else 200)


@admin_view
@require_http_methods(["GET", "POST"])
def step_access(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        group_id = request.POST.get("group", "")
        if not group_id.isdigit():
            error = "Choose the group whose members may use Web Access."
        else:
            group = get_object_or_404(Group.objects, pk=int(group_id))
            _report(request, wizard.grant_reader(group))
            return redirect(_url("access"))
    groups = Group.objects.prefetch_related("grants").order_by("name")
    context = _context("access", error=error, groups=groups)
    return render(request, f"{TEMPLATES}/access.html", context, status=400 if error else 200)
