"""Admin Access > Archiving > Journal Endpoints.

Add and edit open in the page's ``<dialog>`` when HTMX asks (plain pages otherwise).
After Save the dialog stays open and shows the endpoint's SMTP address with a Copy
button: the admin pastes it into the Purview journal rule. The "+" beside the mailbox
picker creates a Journal mailbox in place and selects it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.archive.models import Mailbox
from mailvault.sources import journal_endpoints as service
from mailvault.sources.models import JournalEndpoint
from mailvault.web.access import admin_view
from mailvault.web.forms_journal import JournalEndpointForm, JournalMailboxForm
from mailvault.web.views.admin_jobs import is_htmx, next_url

LIST_URL = "adminaccess:journal_endpoints"


def _preselected_mailbox(request: HttpRequest) -> str | None:
    """``?mailbox=<id>`` (back from creating a journal mailbox without JavaScript)."""
    value = request.GET.get("mailbox", "")
    if value.isdigit() and Mailbox.objects.filter(pk=int(value)).exists():
        return value
    return None


def _form_response(
    request: HttpRequest, form: JournalEndpointForm, endpoint: JournalEndpoint | None
) -> HttpResponse:
    action = (
        reverse("adminaccess:journal_endpoint_edit", kwargs={"endpoint_id": endpoint.pk})
        if endpoint is not None
        else reverse("adminaccess:journal_endpoint_create")
    )
    context: dict[str, Any] = {
        "form": form,
        "endpoint": endpoint,
        "creating": endpoint is None,
        "action": action,
        "in_dialog": is_htmx(request),
        "new_mailbox_url": f"{reverse('adminaccess:journal_mailbox_create')}?"
        + urlencode({"next": action}),
    }
    template = "_journal_form.html" if is_htmx(request) else "journal_form.html"
    return render(request, f"web/admin/{template}", context)


def _saved_response(request: HttpRequest, endpoint: JournalEndpoint, created: bool) -> HttpResponse:
    """The dialog (or page) stays open on the endpoint's SMTP address."""
    context = {"endpoint": endpoint, "created": created}
    template = "_journal_saved.html" if is_htmx(request) else "journal_saved.html"
    return render(request, f"web/admin/{template}", context)


def _save(
    request: HttpRequest, form: JournalEndpointForm, endpoint: JournalEndpoint | None
) -> JournalEndpoint | None:
    """Create or update from a valid form; a refusal lands on the form's field."""
    data = form.cleaned_data
    try:
        if endpoint is None:
            return service.create_endpoint(
                data["name"],
                data["mailbox"],
                auth_username=data["auth_username"],
                auth_password=data["auth_password"],
                allowed_networks=data["allowed_networks"],
            )
        return service.update_endpoint(
            endpoint,
            name=data["name"],
            mailbox=data["mailbox"],
            auth=service.AuthChange(
                username=data["auth_username"],
                password=data["auth_password"],
                remove=bool(data.get("remove_auth")),
            ),
            allowed_networks=data["allowed_networks"],
        )
    except service.JournalEndpointError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return None


@admin_view
@require_GET
def endpoint_list(request: HttpRequest) -> HttpResponse:
    endpoints = JournalEndpoint.objects.select_related("mailbox")
    return render(request, "web/admin/journal_endpoints.html", {"endpoints": endpoints})


@admin_view
@require_http_methods(["GET", "POST"])
def endpoint_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = JournalEndpointForm(request.POST)
        if form.is_valid() and (endpoint := _save(request, form, None)) is not None:
            return _saved_response(request, endpoint, created=True)
    else:
        form = JournalEndpointForm(initial={"mailbox": _preselected_mailbox(request)})
    return _form_response(request, form, None)


@admin_view
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(JournalEndpoint.objects, pk=endpoint_id)
    if request.method == "POST":
        form = JournalEndpointForm(request.POST, editing=endpoint)
        if form.is_valid() and _save(request, form, endpoint) is not None:
            return _saved_response(request, endpoint, created=False)
    else:
        initial = {
            "name": endpoint.name,
            "mailbox": _preselected_mailbox(request) or str(endpoint.mailbox_id),
            "auth_username": endpoint.auth_username,
            "allowed_networks": endpoint.allowed_networks,
        }
        form = JournalEndpointForm(initial=initial, editing=endpoint)
    return _form_response(request, form, endpoint)


@admin_view
@require_POST
def endpoint_set_enabled(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(JournalEndpoint.objects, pk=endpoint_id)
    enable = request.POST.get("enabled") == "1"
    service.set_enabled(endpoint, enable)
    if enable:
        messages.success(request, f"Journal endpoint {endpoint.name} enabled.")
    else:
        messages.success(
            request,
            f"Journal endpoint {endpoint.name} disabled: mail to its address is refused.",
        )
    return redirect(LIST_URL)


@admin_view
@require_http_methods(["GET", "POST"])
def endpoint_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """GET asks for confirmation (the page without JavaScript), POST deletes."""
    endpoint = get_object_or_404(JournalEndpoint.objects.select_related("mailbox"), pk=endpoint_id)
    if request.method == "POST":
        name = endpoint.name
        service.delete_endpoint(endpoint)
        messages.success(
            request,
            f"Journal endpoint {name} deleted. Its journal mailbox and the mail in it stay.",
        )
        return redirect(LIST_URL)
    return render(request, "web/admin/journal_delete.html", {"endpoint": endpoint})


@admin_view
@require_http_methods(["GET", "POST"])
def journal_mailbox_create(request: HttpRequest) -> HttpResponse:
    """The "+" of the mailbox picker. With HTMX: GET gives the small form inside the
    picker, POST answers with the picker again, the new mailbox selected (or the small
    form with its errors). Without: a page that returns to the endpoint form."""
    back = next_url(request, reverse("adminaccess:journal_endpoint_create"))
    form = JournalMailboxForm(request.POST if request.method == "POST" else None)
    created: Mailbox | None = None
    if request.method == "POST" and form.is_valid():
        try:
            created = service.create_journal_mailbox(
                form.cleaned_data["address"], form.cleaned_data["display_name"]
            )
        except service.JournalEndpointError as exc:
            form.add_error("address", str(exc))
    if not is_htmx(request):
        if created is not None:
            messages.success(request, f"Journal mailbox {created.primary_address} created.")
            joiner = "&" if "?" in back else "?"
            return redirect(f"{back}{joiner}{urlencode({'mailbox': created.pk})}")
        return render(request, "web/admin/journal_mailbox_form.html", {"form": form, "back": back})
    if request.method == "GET":
        return render(request, "web/admin/_journal_new_mailbox.html", {"mailbox_form": form})
    selected = str(created.pk) if created else request.POST.get("mailbox", "")
    picker = JournalEndpointForm(initial={"mailbox": selected})
    context = {
        "form": picker,
        "mailbox_form": None if created else form,
        "created_mailbox": created,
        "new_mailbox_url": request.get_full_path(),
    }
    return render(request, "web/admin/_journal_mailbox_picker.html", context)
