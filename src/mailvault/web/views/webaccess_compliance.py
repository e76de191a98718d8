"""Web Access for the Compliance role: search every mailbox, delete, export, holds,
four-eyes approvals. Every page needs the Compliance role."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.accounts.roles import Role
from mailvault.archive.models import Message
from mailvault.compliance import approvals, deletion, export, holds
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import ApprovalRequest
from mailvault.jobs.models import JobRun
from mailvault.search import QuerySyntaxError, SearchResult
from mailvault.search.services import search_for_user
from mailvault.web.access import area_view, signed_in_user
from mailvault.web.forms_compliance import DeleteForm, ExportForm, LegalHoldForm, ReleaseForm

PAGE_SIZE = 50

compliance_view = area_view("web", [Role.COMPLIANCE])


def _page(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page") or "1"))
    except ValueError as exc:
        raise Http404 from exc


@compliance_view
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    query = request.GET.get("q", "").strip()
    page = _page(request)
    result: SearchResult | None = None
    error = ""
    if query:
        try:
            result = search_for_user(user, query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        except QuerySyntaxError as exc:
            error = str(exc)
    found = {}
    held: set[int] = set()
    if result is not None:
        ids = [hit.message_id for hit in result.hits]
        found = {m.pk: m for m in Message.objects.filter(pk__in=ids)}
        try:
            held = holds.held_ids(ids)
        except Exception:
            held = set(ids)  # cannot tell: show everything as held (fail closed)
    rows = [
        (hit, found[hit.message_id])
        for hit in (result.hits if result else [])
        if hit.message_id in found
    ]
    return render(
        request,
        "web/webaccess/compliance/search.html",
        {
            "q": query,
            "error": error,
            "rows": rows,
            "held": held,
            "total": result.total if result else 0,
            "total_is_estimate": bool(result and result.total_is_estimate),
            "page_number": page,
            "has_next": bool(result and result.total > page * PAGE_SIZE),
            "delete_form": DeleteForm(),
            "four_eyes": approvals.four_eyes(),
        },
        status=400 if error else 200,
    )


@compliance_view
@require_POST
def delete(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = DeleteForm(request.POST)
    back = request.POST.get("next") or ""
    ids = []
    for value in request.POST.getlist("message"):
        try:
            ids.append(int(value))
        except ValueError:
            continue
    ids = list(Message.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if not form.is_valid():
        messages.error(request, "Give a reason for the deletion.")
    else:
        try:
            outcome = approvals.request_deletion(user, ids, form.cleaned_data["reason"])
        except deletion.DeletionRefused as exc:
            messages.error(request, f"Nothing was deleted: {exc}.")
        except deletion.GuardFailure as exc:
            messages.error(request, f"Nothing was deleted: {exc}.")
        except approvals.ApprovalError as exc:
            messages.error(request, str(exc))
        else:
            if outcome.done and outcome.report is not None:
                messages.success(request, f"{len(outcome.report.deleted)} message(s) deleted.")
            else:
                messages.info(
                    request, "The deletion waits for a second Compliance user's approval."
                )
    if back.startswith("/webaccess/"):
        return redirect(back)
    return redirect("webaccess:compliance_search")


@compliance_view
@require_http_methods(["GET", "POST"])
def hold_list(request: HttpRequest) -> HttpResponse:
    form = LegalHoldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hold = form.create_hold(signed_in_user(request))
        if hold is not None:
            messages.success(request, f"Legal hold {hold.name} is in force.")
            return redirect("webaccess:compliance_holds")
    return render(
        request,
        "web/webaccess/compliance/holds.html",
        {"holds": LegalHold.objects.select_related("mailbox"), "form": form},
    )


@compliance_view
@require_POST
def hold_release(request: HttpRequest, hold_id: int) -> HttpResponse:
    hold = get_object_or_404(LegalHold.objects, pk=hold_id)
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason for the release.")
        return redirect("webaccess:compliance_holds")
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
            messages.info(request, "The release waits for a second Compliance user's approval.")
    return redirect("webaccess:compliance_holds")


@compliance_view
@require_GET
def approval_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "web/webaccess/compliance/approvals.html",
        {
            "pending": ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING),
            "decided": ApprovalRequest.objects.exclude(status=ApprovalRequest.Status.PENDING)[:50],
            "me": signed_in_user(request),
            "four_eyes": approvals.four_eyes(),
        },
    )


@compliance_view
@require_POST
def approval_decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    item = get_object_or_404(ApprovalRequest.objects, pk=approval_id)
    user = signed_in_user(request)
    try:
        if request.POST.get("decision") == "approve":
            done = approvals.approve(item, user)
            if done.status == ApprovalRequest.Status.APPROVED:
                messages.success(request, f"Approved: {done.outcome}.")
            else:
                messages.error(request, f"Approved, but refused: {done.outcome}")
        else:
            approvals.reject(item, user)
            messages.info(request, "Request rejected.")
    except approvals.ApprovalError as exc:
        messages.error(request, str(exc))
    return redirect("webaccess:compliance_approvals")


@compliance_view
@require_http_methods(["GET", "POST"])
def export_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    query = request.GET.get("q", "")
    initial = {"query": query, "source": ExportJob.Source.SEARCH if query else None}
    form = ExportForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = export.request_export(
                user,
                source=data["source"],
                fmt=data["format"],
                query=data["query"],
                mailbox=data["mailbox"],
                folder=data["folder"],
            )
        except (export.ExportError, QuerySyntaxError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Export {job.pk} queued.")
            return redirect("webaccess:compliance_exports")
    jobs = list(ExportJob.objects.filter(requested_by=user).select_related("mailbox", "folder"))
    runs = {
        r.config_id: r
        for r in JobRun.objects.filter(
            process_type="compliance.export", config_id__in=[str(j.pk) for j in jobs]
        )
    }
    return render(
        request,
        "web/webaccess/compliance/exports.html",
        {"form": form, "rows": [(j, runs.get(str(j.pk))) for j in jobs]},
    )


@compliance_view
@require_GET
def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    user = signed_in_user(request)
    # Someone else's export is a 404: only the requester may download.
    job = get_object_or_404(ExportJob.objects, pk=export_id, requested_by=user)
    if not export.downloadable(job, user):
        messages.error(request, f"Export {job.pk} is not ready or has expired.")
        return redirect("webaccess:compliance_exports")
    content_type = "application/zip" if job.format == ExportJob.Format.ZIP else "application/mbox"
    response = FileResponse(
        export.file_path(job).open("rb"),  # FileResponse closes it
        as_attachment=True,
        filename=job.file_name,
        content_type=content_type,
    )
    return cast(HttpResponse, response)  # the area decorators type plain responses
