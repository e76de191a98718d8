"""Records writes and denials of Admin Access, Web Access and the API in one place.

Every request gets an id (``request.audit_request_id``, answered as ``X-Request-ID``).
A write (any method but GET/HEAD/OPTIONS) is recorded with the resolved view name as
activity, the URL keyword arguments as object and its outcome; a read refused with 403,
or answered 404 for an object of another tenant, is recorded as ``access.denied``.
Sign-in steps are left to :mod:`.signals`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from mailvault.compliance import audit

log = logging.getLogger("mailvault.compliance.audit")

AUDITED_PREFIXES = ("/adminaccess/", "/webaccess/", "/api/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sign-in steps: recorded by the auth signals (a login, a failed login), not as writes.
SIGN_IN_VIEWS = frozenset(
    {
        "adminaccess:login",
        "adminaccess:totp",
        "adminaccess:logout",
        "webaccess:login",
        "webaccess:login_password",
        "webaccess:totp",
        "webaccess:logout",
    }
)
# A form answered again with its errors (status 200) was refused, not carried out.
_FORM_ERROR = re.compile(rb'class="(?:[^"]* )?(?:error|has-error)[ "]')
DENIED = "access.denied"
# Posted fields that name what a write is about (never secrets), kept in the message.
IDENTIFYING_FIELDS = (
    "name",
    "local_part",
    "domain",
    "username",
    "primary_address",
    "address",
    "display_name",
    "path",
)
_USERNAME_KEY = "mailvault_login_username"  # Web Access keeps the typed name here


def _form_refused(response: HttpResponse) -> bool:
    if response.status_code != 200 or getattr(response, "streaming", False):
        return False
    if not response.get("Content-Type", "").startswith("text/html"):
        return False
    return bool(_FORM_ERROR.search(response.content))


def _form_hint(request: HttpRequest) -> str:
    """The identifying fields of a posted form (a new object has no id in its URL)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return ""
    try:
        posted = request.POST
    except Exception:  # a view that read the raw stream itself: no form to read
        return ""
    parts = []
    for name in IDENTIFYING_FIELDS:
        value = str(posted.get(name, "")).strip()
        if value:
            parts.append(f"{name}={value[:100]}")
    return " ".join(parts)


def _object_of(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None or not match.kwargs:
        return ""
    return " ".join(f"{key}={value}" for key, value in sorted(match.kwargs.items()))


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.audit_request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.audit_request_id  # type: ignore[attr-defined]
        if request.path.startswith(AUDITED_PREFIXES):
            try:
                self._record(request, response)
            except Exception:
                # The request already happened; losing its entry must be loud in the logs.
                log.exception(
                    "could not record %s %s in the audit log", request.method, request.path
                )
        return response

    def _record(self, request: HttpRequest, response: HttpResponse) -> None:
        match = request.resolver_match
        view = match.view_name if match is not None else ""
        if view in SIGN_IN_VIEWS:
            self._record_refused_sign_in(request, response)
            return
        status = response.status_code
        signed_in = bool(getattr(request, "user", None) and request.user.is_authenticated)
        # An API request names its key's actor with audit.set_actor (no session); every
        # API write is recorded, refused ones (401) included.
        signed_in = signed_in or getattr(request, "audit_actor", None) is not None
        api = request.path.startswith("/api/")
        summary = f"{request.method} {request.path} -> {status}"
        if request.method not in SAFE_METHODS:
            if not signed_in and not api and status != 403:
                return  # an anonymous write is sent to the sign-in page: nothing happened
            refused = _form_refused(response)
            hint = _form_hint(request)
            if hint:
                summary = f"{summary}; {hint}"
            audit.record_request(
                request,
                view or request.path,
                object=_object_of(request),
                success=status < 400 and not refused,
                message=f"{summary} (form refused)" if refused else summary,
            )
        elif status == 403 or (status == 404 and signed_in and match is not None and match.kwargs):
            audit.record_request(
                request,
                DENIED,
                object=" ".join(filter(None, [view, _object_of(request)])),
                success=False,
                message=summary,
            )

    def _record_refused_sign_in(self, request: HttpRequest, response: HttpResponse) -> None:
        """A sign-in step refused without a failed-login signal: a wrong second factor,
        a locked account, a user without a role for this area."""
        if request.method != "POST" or response.status_code not in (401, 403):
            return
        if getattr(request, "audit_signin_recorded", False):
            return
        from mailvault.accounts.login import pending_user
        from mailvault.compliance.audit.signals import tenant_of_username

        username = str(request.POST.get("username") or request.session.get(_USERNAME_KEY) or "")
        if not username:
            pending = pending_user(request)
            username = pending.username if pending is not None else ""
        reason = (
            "refused (locked, or no access here)"
            if response.status_code == 403
            else ("wrong second factor" if "totp" in request.path else "refused")
        )
        audit.record(
            "auth.login_failed",
            tenant=tenant_of_username(username) if username else None,
            actor=username,
            actor_type="anonymous",
            object=f"user={username}",
            request_id=audit.request_id_of(request),
            success=False,
            message=f"sign-in {reason} at {request.path} from {request.META.get('REMOTE_ADDR')}",
        )
