"""Rate limits per API key (``MAILVAULT_API_RATE``, e.g. ``600/min``; operator keys:
``MAILVAULT_API_OPERATOR_RATE``), counted in Django's cache; unauthenticated calls are
limited per client address by ``MAILVAULT_API_ANON_RATE``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from mailvault.api.principal import OperatorPrincipal, TenantKeyPrincipal


class KeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_rate(self) -> str | None:
        return None  # chosen per request in allow_request

    def allow_request(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, OperatorPrincipal):
            rate = settings.MAILVAULT_API_OPERATOR_RATE
        elif isinstance(user, TenantKeyPrincipal):
            rate = settings.MAILVAULT_API_RATE
        else:
            rate = settings.MAILVAULT_API_ANON_RATE
        self.rate = rate
        self.num_requests, self.duration = self.parse_rate(rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if isinstance(user, TenantKeyPrincipal | OperatorPrincipal):
            ident = user.key.prefix
        else:
            ident = f"anon-{self.get_ident(request)}"
        return f"mailvault-api-throttle-{ident}"
