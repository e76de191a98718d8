"""The sign-in steps shared by both front doors: throttle, password, second factor.

Views stay thin: they call these functions and render the outcome. A step that needs the
second factor keeps the half-signed-in user in the session under ``PENDING_KEY`` until the
TOTP code arrives; nobody is signed in before every step has passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from django.contrib.auth import authenticate, login
from django.http import HttpRequest

from mailvault.accounts import mfa, throttle
from mailvault.accounts.backends import find_user
from mailvault.accounts.models import User
from mailvault.tenancy.context import tenant_context

log = logging.getLogger("mailvault.accounts.login")

PENDING_KEY = "mailvault_pending_login"
BACKEND = "mailvault.accounts.backends.TenantUserBackend"

GENERIC_FAILURE = "The username or password is not correct."
LOCKED = (
    "Too many failed sign-ins: this account is locked for a while. Try again later or ask "
    "your administrator."
)


class Step(Enum):
    DONE = "done"
    NEEDS_TOTP = "needs_totp"
    FAILED = "failed"
    LOCKED = "locked"
    NO_ACCESS = "no_access"


@dataclass(frozen=True)
class Outcome:
    step: Step
    message: str = ""
    user: User | None = None


def remote_addr(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def password_step(
    request: HttpRequest, username: str, password: str, area_roles: frozenset[str]
) -> Outcome:
    if throttle.is_locked(username):
        log.warning("login refused for locked %r from %s", username, remote_addr(request))
        return Outcome(Step.LOCKED, LOCKED)
    user = authenticate(request, username=username, password=password)
    if not isinstance(user, User):
        throttle.record_failure(username, remote_addr(request))
        if throttle.is_locked(username):
            return Outcome(Step.LOCKED, LOCKED)
        return Outcome(Step.FAILED, GENERIC_FAILURE)
    throttle.clear_failures(username)
    if not user.roles & area_roles:
        log.warning("login of %s refused: no role for this area", user)
        return Outcome(Step.NO_ACCESS, "Your account has no access here.", user)
    if user.totp_enabled:
        token = request.COOKIES.get(mfa.trust_cookie_name(user))
        if not mfa.is_trusted(user, token):
            request.session[PENDING_KEY] = user.pk
            return Outcome(Step.NEEDS_TOTP, user=user)
    finish(request, user)
    return Outcome(Step.DONE, user=user)


def pending_user(request: HttpRequest) -> User | None:
    user_id = request.session.get(PENDING_KEY)
    if user_id is None:
        return None
    return User.unscoped.select_related("tenant").filter(pk=user_id, is_active=True).first()


def totp_step(request: HttpRequest, code: str) -> Outcome:
    user = pending_user(request)
    if user is None:
        return Outcome(Step.FAILED, "Your sign-in expired. Please start again.")
    if throttle.is_locked(user.username):
        request.session.pop(PENDING_KEY, None)
        return Outcome(Step.LOCKED, LOCKED)
    with tenant_context(user.tenant):  # verify_code saves the accepted step (anti-replay)
        accepted = mfa.verify_code(user, code)
    if not accepted:
        throttle.record_failure(user.username, remote_addr(request))
        if throttle.is_locked(user.username):
            request.session.pop(PENDING_KEY, None)
            return Outcome(Step.LOCKED, LOCKED)
        return Outcome(Step.FAILED, "The code is not correct.", user)
    throttle.clear_failures(user.username)
    finish(request, user)
    return Outcome(Step.DONE, user=user)


def finish(request: HttpRequest, user: User) -> None:
    request.session.pop(PENDING_KEY, None)
    # Nobody is signed in yet, so no tenant is active; login() saves last_login.
    with tenant_context(user.tenant):
        login(request, user, backend=BACKEND)
    log.info("login of %s from %s", user, remote_addr(request))


def is_directory_user(username: str) -> bool:
    user = find_user(username)
    return bool(user and user.source == User.Source.DIRECTORY)
