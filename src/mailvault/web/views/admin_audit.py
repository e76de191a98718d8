"""Admin Access > Compliance > Audit Log: search, chain validation, CSV export (Auditor)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import cast

from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from mailvault.compliance import audit
from mailvault.compliance.audit import search
from mailvault.tenancy.context import current_tenant
from mailvault.web.access import auditor_view
from mailvault.web.forms_audit import AuditExportForm, AuditFilterForm

PAGE_SIZE = 100


def _filter(form: AuditFilterForm) -> search.AuditFilter:
    if not form.is_valid():
        return search.AuditFilter()
    data = form.cleaned_data
    return search.AuditFilter(
        since=data.get("since"),
        until=data.get("until"),
        activity=data.get("activity") or "",
        actor=(data.get("actor") or "").strip(),
        text=(data.get("q") or "").strip(),
        success={"ok": True, "failed": False}.get(data.get("outcome") or ""),
    )


@auditor_view
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    paginator = Paginator(search.search(_filter(form)), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request,
        "web/admin/audit_log.html",
        {
            "form": form,
            "page": page,
            "entries": list(page.object_list),
            "total": paginator.count,
            "max_results": search.MAX_RESULTS,
        },
    )


@auditor_view
@require_GET
def audit_validation(request: HttpRequest) -> HttpResponse:
    """Walks the whole chain on every visit (bounded memory; see the chain module)."""
    result = audit.validate(current_tenant())
    return render(
        request,
        "web/admin/audit_validation.html",
        {"result": result, "checked_at": datetime.now(UTC)},
    )


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


@auditor_view
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse:
    """``?day=YYYY-MM-DD``: that UTC day's CSV; ``?first=…&last=…``: a ZIP, one CSV a
    day; otherwise the export form."""
    day = _day(request.GET.get("day", ""))
    if day is not None:
        response = StreamingHttpResponse(search.csv_lines(day), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{search.csv_filename(day)}"'
        return cast(HttpResponse, response)  # the area decorators type plain responses
    form = AuditExportForm(request.GET if "first" in request.GET else None)
    if form.is_bound and form.is_valid():
        first, last = form.cleaned_data["first"], form.cleaned_data["last"]
        return cast(
            HttpResponse,
            FileResponse(
                search.zip_of_days(first, last),
                as_attachment=True,
                filename=f"audit-{first.isoformat()}-to-{last.isoformat()}.zip",
                content_type="application/zip",
            ),
        )
    if not form.is_bound:
        form = AuditExportForm(initial=AuditExportForm.initial_days())
    days = search.days_with_entries(
        AuditExportForm.initial_days()["first"], AuditExportForm.initial_days()["last"]
    )
    return render(
        request,
        "web/admin/audit_export.html",
        {"form": form, "recent_days": days, "here": reverse("adminaccess:audit_export")},
        status=400 if form.is_bound else 200,
    )
