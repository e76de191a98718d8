"""Sign-in with Microsoft for users synchronized from Entra ID, at both front doors."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from mailvault.accounts import login as signin
from mailvault.accounts.backends import find_user
from mailvault.directory import signin as microsoft
from mailvault.web.access import AREA_ROLES, Area
from mailvault.web.views.auth import HOME, NS, USERNAME_KEY, _context

FLOW_KEY = "mailvault_microsoft_flow"
NO_ACCESS = {
    "admin": "Your account has no access to Admin Access. Web Access is at /webaccess.",
    "web": "Your account has no access to Web Access. Ask your administrator for the Reader role.",
}
PREFIX = {"admin": "/adminaccess", "web": "/webaccess"}


def _problem(request: HttpRequest, area: Area, text: str, status: int) -> HttpResponse:
    return render(
        request, "web/auth/login_problem.html", _context(request, area, error=text), status=status
    )


def _start(request: HttpRequest, area: Area) -> HttpResponse:
    """Off to the tenant's Entra sign-in, the username as login_hint."""
    username = request.session.get(USERNAME_KEY)
    user = find_user(username) if username else None
    account = microsoft.entra_account(user) if user is not None else None
    if account is None:
        return redirect(f"{NS[area]}:login")
    redirect_uri = request.build_absolute_uri(reverse(f"{NS[area]}:login_microsoft_callback"))
    try:
        flow = microsoft.start(account, redirect_uri, login_hint=username or "")
    except microsoft.SignInError as exc:
        return _problem(request, area, str(exc), 503)
    flow["mailvault_next"] = request.GET.get("next", "")
    request.session[FLOW_KEY] = flow
    return HttpResponseRedirect(str(flow["auth_uri"]))


def _callback(request: HttpRequest, area: Area) -> HttpResponse:
    flow = request.session.pop(FLOW_KEY, None)
    if not flow:  # expired, or opened again from the history: start over
        return redirect(f"{NS[area]}:login")
    try:
        user = microsoft.finish(flow, request.GET.dict())
    except microsoft.SignInError as exc:
        return _problem(request, area, str(exc), 403)
    if not user.roles & AREA_ROLES[area]:
        return _problem(request, area, NO_ACCESS[area], 403)
    signin.finish(request, user)
    request.session.pop(USERNAME_KEY, None)
    nxt = str(flow.get("mailvault_next", ""))
    if nxt.startswith(PREFIX[area]) and url_has_allowed_host_and_scheme(
        nxt, allowed_hosts={request.get_host()}
    ):
        return HttpResponseRedirect(nxt)
    return redirect(HOME[area])


@require_GET
def web_login_microsoft(request: HttpRequest) -> HttpResponse:
    return _start(request, "web")


@require_GET
def web_login_microsoft_callback(request: HttpRequest) -> HttpResponse:
    return _callback(request, "web")


@require_GET
def admin_login_microsoft(request: HttpRequest) -> HttpResponse:
    return _start(request, "admin")


@require_GET
def admin_login_microsoft_callback(request: HttpRequest) -> HttpResponse:
    return _callback(request, "admin")
