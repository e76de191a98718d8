"""Admin Access dashboard and the honest "not built yet" pages."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mailvault.accounts import services
from mailvault.accounts.roles import Role
from mailvault.jobs import registry
from mailvault.jobs import services as jobs
from mailvault.tenancy.context import current_tenant
from mailvault.web.access import area_view, signed_in_user
from mailvault.web.navigation import UNBUILT


@area_view("admin")
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = current_tenant()
    notices = []
    admins = services.active_admins()
    is_admin = signed_in_user(request).has_role(Role.ADMIN)
    if is_admin and len(admins) == 1 and admins[0].is_provisioned_admin:
        notices.append(
            "The provisioned admin is still the only Admin. Give a group of your own "
            "people the Admin role."
        )
    # Jobs link to the process log, which is the Admin's.
    dashboard_jobs = jobs.dashboard(timezone.now()) if is_admin else None
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
        },
    )


@area_view("admin")
def not_built(request: HttpRequest, slug: str) -> HttpResponse:
    item = UNBUILT.get(slug)
    if item is None:
        raise Http404
    return render(request, "web/admin/not_built.html", {"item": item})
