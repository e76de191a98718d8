"""Authenticates API keys for every request under ``/api/``, in one place.

It runs after Django's session authentication and before ``TenantMiddleware``: under
``/api/`` a session never counts, ``request.user`` becomes the key's principal (or
anonymous), and ``TenantMiddleware`` then activates the key's tenant exactly as it does
a signed-in user's. An operator key activates no tenant.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse

from mailvault.api import keys
from mailvault.api.errors import body
from mailvault.api.principal import OperatorPrincipal, TenantKeyPrincipal

API_PREFIX = "/api/"


def bearer_token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


_FALLBACK: dict[int, tuple[str, str]] = {
    400: ("invalid", "The request is not valid."),
    403: ("permission_denied", "This request is not allowed."),
    404: ("not_found", "No API endpoint at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    500: ("server_error", "An internal error occurred; the request id identifies it."),
}


def as_api_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An error under /api/ that no API view answered (no URL matched, Django's own 404
    or 500 page): the same JSON error body as everywhere else in the API."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith(
        "application/json"
    ):
        return response
    code, message = _FALLBACK.get(
        response.status_code, ("error", f"The request failed ({response.status_code}).")
    )
    return JsonResponse(body(request, code, message), status=response.status_code)


class ApiKeyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX):
            request.user = AnonymousUser()
            # True when credentials were sent but are not valid: 401, not anonymous.
            request.api_auth_error = False  # type: ignore[attr-defined]
            token = bearer_token(request)
            if token is not None:
                principal = self._principal(token)
                if principal is None:
                    request.api_auth_error = True  # type: ignore[attr-defined]
                else:
                    request.user = principal  # type: ignore[assignment]
            elif request.META.get("HTTP_AUTHORIZATION"):
                request.api_auth_error = True  # type: ignore[attr-defined]
            return as_api_error(request, self.get_response(request))
        return self.get_response(request)

    @staticmethod
    def _principal(token: str) -> TenantKeyPrincipal | OperatorPrincipal | None:
        if token.startswith(f"{keys.OPERATOR_KEY_TAG}_"):
            op_key = keys.authenticate_operator_key(token)
            return OperatorPrincipal(op_key) if op_key is not None else None
        key = keys.authenticate_key(token)
        return TenantKeyPrincipal(key) if key is not None else None
