"""The audit log: who did what, when, with what outcome — append-only, hash-chained.

Recording happens in few places: :mod:`.middleware` (every write and every denial in
Admin Access, Web Access and the API), :mod:`.signals` (sign-ins), the ``mailvault``
CLI hook (:mod:`.cli`), and :func:`record` for what only a view knows (a Compliance
user viewing, downloading or exporting a message).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from mailvault.tenancy.context import current_tenant_or_none

if TYPE_CHECKING:
    # Imported lazily at run time: the ``mailvault`` CLI imports this package (through
    # :mod:`.cli`) before Django is set up.
    from mailvault.compliance.audit.chain import Validation
    from mailvault.compliance.models_audit import AuditRecord
    from mailvault.tenancy.models import Tenant

__all__ = ["record", "record_request", "request_id_of", "set_actor", "validate"]

_UNSET: Any = object()
_LIMITS = {"actor": 254, "activity": 120, "object": 500, "request_id": 64}


def record(
    activity: str,
    *,
    tenant: Tenant | None = _UNSET,
    actor: str = "",
    actor_type: str = "system",
    object: str = "",  # the audit field's name
    request_id: str = "",
    success: bool = True,
    message: str = "",
    time: datetime | None = None,
) -> AuditRecord:
    """Append one entry; ``tenant`` defaults to the active tenant (none: operator).
    ``time`` defaults to now (tests and imports of past events set it)."""
    from mailvault.compliance.audit.chain import append

    if tenant is _UNSET:
        tenant = current_tenant_or_none()
    values = {
        "actor": actor,
        "activity": activity,
        "object": object,
        "request_id": request_id,
    }
    clipped = {name: value[: _LIMITS[name]] for name, value in values.items()}
    return append(
        tenant,
        actor_type=actor_type,
        success=success,
        message=message,
        **({"time": time} if time is not None else {}),
        **clipped,
    )


def validate(tenant: Tenant | None) -> Validation:
    """Walk the tenant's chain (None: the operator chain); see :mod:`.chain`."""
    from mailvault.compliance.audit.chain import validate as validate_chain

    return validate_chain(tenant)


def request_id_of(request: HttpRequest) -> str:
    """The id of this request (set by the audit middleware; made up if it did not run)."""
    rid = getattr(request, "audit_request_id", None)
    if not rid:
        rid = uuid.uuid4().hex
        request.audit_request_id = rid  # type: ignore[attr-defined]
    return str(rid)


def set_actor(request: HttpRequest, actor: str, tenant: Tenant, actor_type: str = "api") -> None:
    """Name who made a request that is not signed in by session (an API key): the
    middleware then records its writes under this actor, in this tenant's chain."""
    request.audit_actor = (actor, actor_type, tenant)  # type: ignore[attr-defined]


def actor_of(request: HttpRequest) -> tuple[str, str, Tenant | None]:
    """(actor, actor type, tenant) of a request's signed-in user."""
    explicit = getattr(request, "audit_actor", None)
    if explicit is not None:
        return explicit
    user = getattr(request, "user", None)
    api = request.path.startswith("/api/")
    if user is None or not user.is_authenticated:
        return "", "anonymous", current_tenant_or_none()
    tenant = getattr(user, "tenant", None)
    return user.get_username(), "api" if api else "user", tenant


def record_request(
    request: HttpRequest,
    activity: str,
    *,
    object: str = "",
    success: bool = True,
    message: str = "",
) -> AuditRecord:
    """Append an entry for something the signed-in user of ``request`` did."""
    actor, actor_type, tenant = actor_of(request)
    return record(
        activity,
        tenant=tenant,
        actor=actor,
        actor_type=actor_type,
        object=object,
        request_id=request_id_of(request),
        success=success,
        message=message,
    )


def record_message_access(request: HttpRequest, activity: str, message: Any) -> None:
    """A Compliance user viewed, downloaded or exported a message: record it.

    ``activity`` is e.g. ``message.view``, ``message.download``, ``message.export``.
    Other users' reading is not recorded (their access is their own mail)."""
    from mailvault.accounts.roles import Role

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or Role.COMPLIANCE not in user.roles:
        return
    record_request(
        request,
        activity,
        object=f"message={message.pk} sha256={message.sha256}",
        message=str(getattr(message, "subject", ""))[:500],
    )
