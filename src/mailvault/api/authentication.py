"""DRF's view of the key that :class:`~mailvault.api.middleware.ApiKeyMiddleware`
already checked: no second lookup, one place that decides."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from mailvault.api.principal import OperatorPrincipal, TenantKeyPrincipal


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        django_request = request._request
        user = getattr(django_request, "user", None)
        if isinstance(user, TenantKeyPrincipal | OperatorPrincipal):
            return user, user.key
        if getattr(django_request, "api_auth_error", False):
            raise exceptions.AuthenticationFailed(
                "The API key is not valid: unknown, revoked, or its user or tenant is disabled."
            )
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="mailvault"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "mailvault.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from Admin Access > API Keys (mvk_…) or an operator "
            "key (mvo_…), as `Authorization: Bearer <key>`.",
        }
