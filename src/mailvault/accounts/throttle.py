"""Login throttling: too many failures for a username lock it for a while.

Unknown usernames are counted the same way as known ones, so the answer never reveals
whether an account exists.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from mailvault.accounts.models import LoginFailure

log = logging.getLogger("mailvault.accounts.login")


def _window_start() -> datetime:
    return timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def normalize_username(username: str) -> str:
    return username.strip().casefold()


def is_locked(username: str) -> bool:
    recent = LoginFailure.objects.filter(
        username=normalize_username(username), at__gte=_window_start()
    ).count()
    return recent >= settings.LOGIN_MAX_FAILURES


def record_failure(username: str, remote_addr: str | None) -> None:
    LoginFailure.objects.create(username=normalize_username(username), remote_addr=remote_addr)
    log.warning("login failed for %r from %s", username, remote_addr)
    # Keep the table small: nothing older than the window matters.
    LoginFailure.objects.filter(at__lt=_window_start()).delete()


def clear_failures(username: str) -> None:
    LoginFailure.objects.filter(username=normalize_username(username)).delete()
