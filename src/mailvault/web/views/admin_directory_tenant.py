"""The tenant id of a directory service, with a fresh connection test: the fragment the
archiving profile and folder synchronization forms show when a directory service is
chosen (first-setup-m365.md: "the Tenant ID is taken over automatically from the selected
directory service configuration, and the connection is automatically re-tested")."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, render

from mailvault.directory import services, sync
from mailvault.directory.models import DirectoryService
from mailvault.web.access import admin_view


@admin_view
def service_tenant(request: HttpRequest, service_id: int) -> HttpResponse:
    # The id first: another tenant's service is a 404 whatever the method (no oracle).
    service = get_object_or_404(DirectoryService.objects, pk=service_id)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        text, ok = sync.test_connection(service), True
    except services.DirectoryError as exc:
        text, ok = f"The connection failed. {exc}", False
    return render(
        request, "web/admin/directory/_tenant.html", {"service": service, "ok": ok, "text": text}
    )
