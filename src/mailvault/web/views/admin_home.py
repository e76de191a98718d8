"""Admin Access dashboard and the honest "not built yet" pages."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mailvault.accounts import services
from mailvault.accounts.roles import Role
from mailvault.compliance.integrity import latest_verification
from mailvault.jobs import registry
from mailvault.jobs import services as jobs
from mailvault.tenancy.context import current_tenant
from mailvault.web import dashboard as panels
from mailvault.web import dashboard_checks  # noqa: F401 - registers the checks
from mailvault.web.access import area_view, signed_in_user
from mailvault.web.navigation import UNBUILT


@area_view("admin")
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = current_tenant()
    now = timezone.now()
    is_admin = signed_in_user(request).has_role(Role.ADMIN)
    # Notifications and jobs link to pages that are the Admin's.
    notices = panels.notices(now) if is_admin else []
    dashboard_jobs = jobs.dashboard(now) if is_admin else None
    if dashboard_jobs is not None:
        for run in dashboard_jobs.running + dashboard_jobs.failed:
            run.type_name = registry.display_name(run.process_type)  # type: ignore[attr-defined]
    return render(
        request,
        "web/admin/dashboard.html",
        {
            "tenant": tenant,
            "summary": services.tenant_summary(),
            "notices": notices,
            "jobs": dashboard_jobs,
            "verification": latest_verification(),
            "quotas": panels.quotas(),
            "stats": panels.mail_statistics(now),
            "chart": {
                "width": panels.CHART_DAYS * panels.BAR_WIDTH,
                "height": panels.CHART_HEIGHT,
            },
        },
    )


@area_view("admin")
def not_built(request: HttpRequest, slug: str) -> HttpResponse:
    item = UNBUILT.get(slug)
    if item is None:
        raise Http404
    return render(request, "web/admin/not_built.html", {"item": item})
