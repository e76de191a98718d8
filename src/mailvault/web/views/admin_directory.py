"""Admin Access > Directory Services: list, add/edit dialog, Connect Tenant (admin
consent in a new tab; the dialog polls until the tenant id or the refusal comes back),
test connection, run now, dry run, delete (refused while in use; deletes its users)."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.directory import entra, services, sync
from mailvault.directory.models import DirectoryService
from mailvault.jobs import services as jobs
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.forms_directory import NEW_INITIAL, DirectoryServiceForm, initial_for
from mailvault.web.views.admin_jobs import is_htmx
from mailvault.web.views.configurations import configuration_rows

log = logging.getLogger("mailvault.web.directory")
LIST_URL = "adminaccess:directory_services"
CONSENT_KEY = "mailvault_directory_consent"
MAX_DRY_RUN_LISTED = 1000
FLOW_RE = re.compile(r"^[A-Za-z0-9_-]{6,32}$")


@admin_view
@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    listed = DirectoryService.objects.annotate(user_count=Count("synced_objects__user"))
    rows = configuration_rows(listed, services.PROCESS_TYPE, "service")
    return render(
        request,
        "web/admin/directory/list.html",
        {"rows": rows, "here": reverse(LIST_URL)},
    )


def _form_response(
    request: HttpRequest, form: DirectoryServiceForm, service: DirectoryService | None
) -> HttpResponse:
    action = (
        reverse("adminaccess:directory_edit", kwargs={"service_id": service.pk})
        if service
        else reverse("adminaccess:directory_create")
    )
    context: dict[str, Any] = {
        "form": form,
        "service": service,
        "creating": service is None,
        "action": action,
        "in_dialog": is_htmx(request),
        "consent_flow": entra.new_state()[:16],
    }
    template = "_form.html" if is_htmx(request) else "form.html"
    return render(request, f"web/admin/directory/{template}", context)


def _save(form: DirectoryServiceForm, service: DirectoryService | None) -> DirectoryService | None:
    data = form.cleaned_data
    try:
        return services.save_service(
            data["name"],
            service.kind if service else data["kind"],
            form.constraints(),
            service=service,
            entra_tenant_id=data.get("entra_tenant_id", ""),
            ldap=form.ldap_settings(),
        )
    except services.DirectoryError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return None


def _saved(request: HttpRequest, service: DirectoryService, created: bool) -> HttpResponse:
    messages.success(
        request,
        f"Directory service {service.name} {'created' if created else 'saved'}. "
        "Use the clock icon to schedule its synchronization.",
    )
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse(LIST_URL)
        return response
    return redirect(LIST_URL)


@admin_view
@require_http_methods(["GET", "POST"])
def service_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = DirectoryServiceForm(request.POST)
        if form.is_valid() and (service := _save(form, None)) is not None:
            return _saved(request, service, True)
    else:
        form = DirectoryServiceForm(initial=NEW_INITIAL)
    return _form_response(request, form, None)


@admin_view
@require_http_methods(["GET", "POST"])
def service_edit(request: HttpRequest, service_id: int) -> HttpResponse:
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    if request.method == "POST":
        form = DirectoryServiceForm(request.POST, initial=initial_for(service), editing=service)
        if form.is_valid() and _save(form, service) is not None:
            return _saved(request, service, False)
    else:
        form = DirectoryServiceForm(initial=initial_for(service), editing=service)
    return _form_response(request, form, service)


# --- Connect Tenant ---------------------------------------------------------------------


def _flows(request: HttpRequest) -> dict[str, dict[str, str]]:
    flows: dict[str, dict[str, str]] = request.session.get(CONSENT_KEY, {})
    return flows


def _store(request: HttpRequest, flows: dict[str, dict[str, str]]) -> None:
    # A few recent flows only: an admin who clicks Connect Tenant many times.
    request.session[CONSENT_KEY] = dict(list(flows.items())[-5:])


@admin_view
@require_GET
def consent_start(request: HttpRequest) -> HttpResponse:
    """Opened in a new tab by "Connect Tenant": off to Entra's admin consent."""
    flow = request.GET.get("flow", "")
    if not FLOW_RE.match(flow):
        return HttpResponse("Start Connect Tenant from the directory service dialog.", status=400)
    state = entra.new_state()
    flows = _flows(request)
    flows[flow] = {"state": state, "status": "pending"}
    _store(request, flows)
    redirect_uri = request.build_absolute_uri(reverse("adminaccess:directory_consent_callback"))
    return HttpResponseRedirect(entra.consent_url(redirect_uri, state))


@admin_view
@require_GET
def consent_callback(request: HttpRequest) -> HttpResponse:
    """Where Entra sends the admin back; confirms the tenant with a token."""
    flows = _flows(request)
    state = request.GET.get("state", "")
    flow = next((f for f, v in flows.items() if state and v.get("state") == state), None)
    if flow is None:
        return render(
            request,
            "web/admin/directory/consent_done.html",
            {"error": "This consent answer does not belong to a Connect Tenant of this session."},
            status=400,
        )
    error = request.GET.get("error", "")
    tenant = request.GET.get("tenant", "")
    result: dict[str, str]
    if error:
        description = request.GET.get("error_description", "")
        result = {"status": "error", "error": f"Consent was not granted: {error}. {description}"}
    elif not tenant:
        result = {"status": "error", "error": "Entra answered without a tenant id."}
    else:
        try:
            entra.test_connection(tenant)
        except services.DirectoryError as exc:
            result = {"status": "error", "error": f"Tenant {tenant} could not be confirmed: {exc}"}
        else:
            result = {"status": "done", "tenant": tenant}
    flows[flow] = {**flows[flow], **result}
    _store(request, flows)
    return render(request, "web/admin/directory/consent_done.html", result)


@admin_view
@require_GET
def consent_status(request: HttpRequest) -> HttpResponse:
    """Polled by the dialog: the tenant id field once consent came back."""
    flow = request.GET.get("flow", "")
    info = _flows(request).get(flow, {"status": "idle"})
    return render(request, "web/admin/directory/_consent_status.html", {"info": info, "flow": flow})


# --- actions ----------------------------------------------------------------------------


@admin_view
@require_POST
def service_test(request: HttpRequest, service_id: int) -> HttpResponse:
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    try:
        text = sync.test_connection(service)
    except services.DirectoryError as exc:
        messages.error(request, f"{service.name}: the connection failed. {exc}")
    else:
        messages.success(request, f"{service.name}: {text}")
    return redirect(LIST_URL)


@admin_view
@require_POST
def service_run(request: HttpRequest, service_id: int) -> HttpResponse:
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    try:
        run = jobs.run_now(
            services.PROCESS_TYPE, service, triggered_by=signed_in_user(request).username
        )
    except jobs.AlreadyRunning as exc:
        messages.error(request, str(exc))
        return redirect("adminaccess:run_detail", run_id=exc.run.pk)
    messages.success(request, f"Synchronization of {service.name} queued.")
    return redirect("adminaccess:run_detail", run_id=run.pk)


@admin_view
@require_POST
def service_dry_run(request: HttpRequest, service_id: int) -> HttpResponse:
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    notes: list[str] = []
    try:
        result = sync.synchronize(service, dry_run=True, info=notes.append, warn=notes.append)
    except services.DirectoryError as exc:
        return render(
            request, "web/admin/directory/dry_run.html", {"service": service, "error": str(exc)}
        )
    return render(
        request,
        "web/admin/directory/dry_run.html",
        {
            "service": service,
            "result": result,
            "changes": result.changes[:MAX_DRY_RUN_LISTED],
            "hidden": max(0, len(result.changes) - MAX_DRY_RUN_LISTED),
            "notes": notes,
        },
    )


@admin_view
@require_http_methods(["GET", "POST"])
def service_delete(request: HttpRequest, service_id: int) -> HttpResponse:
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    reasons = services.usage(service)
    user_count = services.users_of(service).count()
    if request.method == "POST" and not reasons:
        name = service.name
        try:
            count = services.delete_service(service)
        except (services.DirectoryError, ValueError) as exc:
            messages.error(request, str(exc))
            return redirect(LIST_URL)
        messages.success(
            request, f"Directory service {name} deleted with its {count} synchronized user(s)."
        )
        return redirect(LIST_URL)
    status = 409 if request.method == "POST" else 200
    return render(
        request,
        "web/admin/directory/delete.html",
        {"service": service, "reasons": reasons, "user_count": user_count},
        status=status,
    )
