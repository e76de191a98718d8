"""Who may enter which front door, in one place.

Admin Access admits users holding Admin or Auditor; Web Access admits Reader or
Compliance. Each view names the roles it needs; the decorators here answer everyone else
with a login redirect (anonymous) or a 403 page (signed in, wrong role), and log it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, Literal
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from mailvault.accounts.models import User
from mailvault.accounts.roles import ADMIN_ACCESS_ROLES, WEB_ACCESS_ROLES, Role

log = logging.getLogger("mailvault.web.access")

Area = Literal["admin", "web"]

AREA_ROLES: dict[Area, frozenset[str]] = {"admin": ADMIN_ACCESS_ROLES, "web": WEB_ACCESS_ROLES}
AREA_LOGIN: dict[Area, str] = {"admin": "adminaccess:login", "web": "webaccess:login"}
AREA_TITLE: dict[Area, str] = {"admin": "Admin Access", "web": "Web Access"}


def may_enter(user: Any, area: Area) -> bool:
    return bool(user.is_authenticated and user.roles & AREA_ROLES[area])


def forbidden(request: HttpRequest, area: Area, reason: str) -> HttpResponse:
    log.warning("denied %s %s to %s: %s", request.method, request.path, request.user, reason)
    return render(
        request,
        "web/forbidden.html",
        {"area": area, "area_title": AREA_TITLE[area], "reason": reason},
        status=403,
    )


ViewFunc = Callable[..., HttpResponse]


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that passed an area decorator (never anonymous there)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionError("signed-in user expected")
    return user


def area_view(area: Area, roles: Iterable[str] | None = None) -> Callable[[ViewFunc], ViewFunc]:
    """Require a signed-in user of ``area`` holding one of ``roles`` (default: any role
    that opens the area)."""
    needed = frozenset(roles) if roles is not None else AREA_ROLES[area]

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not isinstance(request.user, User):
                login_url = reverse(AREA_LOGIN[area])
                return HttpResponseRedirect(f"{login_url}?{urlencode({'next': request.path})}")
            user = request.user
            if not user.roles & AREA_ROLES[area]:
                return forbidden(
                    request, area, f"Your account has no access to {AREA_TITLE[area]}."
                )
            if not user.roles & needed:
                names = ", ".join(sorted(Role(r).label for r in needed))
                return forbidden(request, area, f"This page needs the role {names}.")
            request.area = area  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        wrapper.mailvault_area = area  # type: ignore[attr-defined]
        return wrapper

    return decorator


admin_view = area_view("admin", [Role.ADMIN])
auditor_view = area_view("admin", [Role.AUDITOR])
web_view = area_view("web")
