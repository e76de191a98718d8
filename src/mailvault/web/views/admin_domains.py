"""Admin Access > User Management > Domains."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mailvault.accounts import services
from mailvault.accounts.models import Domain
from mailvault.web.access import admin_view
from mailvault.web.forms import DomainForm


@admin_view
@require_http_methods(["GET", "POST"])
def domain_list(request: HttpRequest) -> HttpResponse:
    form = DomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            domain = services.add_domain(form.cleaned_data["name"])
        except services.AccountError as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(
                request,
                f"{domain.name} added. Publish the TXT record shown below, then press Verify.",
            )
            return redirect("adminaccess:domains")
    return render(
        request, "web/admin/domains.html", {"domains": Domain.objects.all(), "form": form}
    )


@admin_view
@require_POST
def domain_verify(request: HttpRequest, domain_id: int) -> HttpResponse:
    domain = get_object_or_404(Domain.objects, pk=domain_id)
    try:
        ok = services.verify_domain(domain)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        if ok:
            messages.success(request, f"{domain.name} is verified.")
        else:
            messages.error(
                request,
                f"No TXT record \u201c{domain.txt_record}\u201d found at {domain.name} yet. "
                "DNS changes can take a while to show.",
            )
    return redirect("adminaccess:domains")


@admin_view
@require_POST
def domain_delete(request: HttpRequest, domain_id: int) -> HttpResponse:
    domain = get_object_or_404(Domain.objects, pk=domain_id)
    try:
        services.delete_domain(domain)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{domain.name} deleted.")
    return redirect("adminaccess:domains")
