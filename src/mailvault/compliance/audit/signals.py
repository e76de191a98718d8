"""Sign-ins into the audit log: every login, logout and failed login."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from mailvault.compliance import audit
from mailvault.compliance.models_audit import ActorType
from mailvault.tenancy.models import Tenant


def _request_id(request: HttpRequest | None) -> str:
    """The request's id; also notes that the sign-in step was recorded (the middleware
    records refusals no signal reports, e.g. a wrong TOTP code or a locked account)."""
    if request is None:
        return ""
    request.audit_signin_recorded = True  # type: ignore[attr-defined]
    return audit.request_id_of(request)


def _where(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return f"{request.path} from {request.META.get('REMOTE_ADDR', '?')}"


@receiver(user_logged_in, dispatch_uid="mailvault_audit_login")
def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit.record(
        "auth.login",
        tenant=getattr(user, "tenant", None),
        actor=user.get_username(),
        actor_type=ActorType.USER,
        object=f"user={user.get_username()}",
        request_id=_request_id(request),
        message=f"signed in at {_where(request)}",
    )


@receiver(user_logged_out, dispatch_uid="mailvault_audit_logout")
def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit.record(
        "auth.logout",
        tenant=getattr(user, "tenant", None),
        actor=user.get_username(),
        actor_type=ActorType.USER,
        object=f"user={user.get_username()}",
        request_id=_request_id(request),
        message=f"signed out at {_where(request)}",
    )


def tenant_of_username(username: str) -> Tenant | None:
    """The tenant a typed username points at: its user's, else its domain's."""
    from mailvault.accounts.backends import find_user

    user = find_user(username)
    if user is not None:
        return user.tenant
    domain = username.rpartition("@")[2].strip().lower()
    return Tenant.objects.filter(name=domain).first() if domain else None


@receiver(user_login_failed, dispatch_uid="mailvault_audit_login_failed")
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username") or "")[:254]
    audit.record(
        "auth.login_failed",
        tenant=tenant_of_username(username) if username else None,
        actor=username,
        actor_type=ActorType.ANONYMOUS,
        object=f"user={username}",
        request_id=_request_id(request),
        success=False,
        message=f"failed sign-in at {_where(request)}",
    )
