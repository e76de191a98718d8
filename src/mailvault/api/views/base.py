"""What every API view shares: service refusals as 400, the acting principal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from mailvault.accounts.services import AccountError
from mailvault.api.errors import ServiceRefused
from mailvault.api.keys import ApiKeyError
from mailvault.api.principal import TenantKeyPrincipal
from mailvault.api.serializers.common import ProblemSerializer
from mailvault.archive.services import MailboxError
from mailvault.jobs.recurrence import RecurrenceError
from mailvault.sources.journal_endpoints import JournalEndpointError
from mailvault.tenancy.provisioning import ProvisioningError

SERVICE_ERRORS: tuple[type[Exception], ...] = (
    AccountError,
    ApiKeyError,
    MailboxError,
    JournalEndpointError,
    RecurrenceError,
    ProvisioningError,
)

ERROR = OpenApiResponse(ProblemSerializer, description="The error body (see errors.py).")
ERRORS: dict[int, Any] = {400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 429: ERROR}


@contextmanager
def service_call() -> Iterator[None]:
    """A service's refusal (its message is for the caller) becomes a 400 answer."""
    try:
        yield
    except SERVICE_ERRORS as exc:
        field = str(getattr(exc, "field", "") or "")
        details = {field: [str(exc)]} if field else {}
        raise ServiceRefused({"message": str(exc), **details} if details else str(exc)) from exc


def principal(request: Request) -> TenantKeyPrincipal:
    user = request.user
    if not isinstance(user, TenantKeyPrincipal):  # the permission classes prevent this
        raise PermissionError("tenant API key expected")
    return user


def actor_name(request: Request) -> str:
    return principal(request).get_username()


class ApiView(GenericAPIView):
    """Base of the tenant endpoints (permission: Admin unless a view says otherwise)."""
