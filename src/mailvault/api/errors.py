"""One error body for every API failure::

    {"error": {"code": "not_found", "message": "...", "details": {...}, "request_id": "..."}}

DRF's exceptions (400/401/403/404/405/415/429), the services' refusals (``ValueError``
subclasses with a message for the user: 400) and anything unexpected (500, logged) all
come out in this shape; errors no API view answered (an unknown URL) are rewritten to
it by :func:`mailvault.api.middleware.as_api_error`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from mailvault.compliance import audit

log = logging.getLogger("mailvault.api")


class ServiceRefused(exceptions.APIException):
    """A service refused the change (its message is for the caller)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def body(request: HttpRequest | None, code: str, message: str, details: Any = None) -> dict:
    rid = audit.request_id_of(request) if request is not None else ""
    return {
        "error": {"code": code, "message": message, "details": details or {}, "request_id": rid}
    }


def _message_and_details(exc: exceptions.APIException) -> tuple[str, Any]:
    detail = exc.detail
    if isinstance(detail, dict):
        details = dict(detail)
        message = details.pop("message", None)
        if message is not None:
            return str(message), details
        return "The request is not valid; see details.", details
    if isinstance(detail, list):
        text = " ".join(str(d) for d in detail)
        return text or "The request is not valid.", {"non_field_errors": detail}
    return str(detail), {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = getattr(context.get("request"), "_request", None)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, ValidationError):
        exc = ServiceRefused("; ".join(exc.messages))
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))
        message, details = _message_and_details(exc)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "invalid")
        set_rollback()
        return Response(
            body(request, code, message, details), status=exc.status_code, headers=headers
        )
    log.exception("API call failed: %s", exc)
    set_rollback()
    return Response(
        body(request, "server_error", "An internal error occurred; the request id identifies it."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
