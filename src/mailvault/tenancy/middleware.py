"""Activates the signed-in user's tenant for the duration of a request."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from mailvault.tenancy.context import tenant_context


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        tenant = getattr(user, "tenant", None) if user.is_authenticated else None
        with tenant_context(tenant):
            return self.get_response(request)
