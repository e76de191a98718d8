"""Sign-in, second factor, sign-out and password change for both front doors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from mailvault.accounts import login as signin
from mailvault.accounts import mfa, services
from mailvault.accounts.backends import find_user
from mailvault.accounts.login import Step
from mailvault.web.access import AREA_ROLES, AREA_TITLE, Area, area_view, signed_in_user
from mailvault.web.forms import (
    LoginForm,
    MfaConfirmForm,
    PasswordChangeForm,
    PasswordOnlyForm,
    TotpForm,
    UsernameForm,
)

HOME = {"admin": "adminaccess:dashboard", "web": "webaccess:home"}
NS = {"admin": "adminaccess", "web": "webaccess"}
USERNAME_KEY = "mailvault_login_username"


def _next_url(request: HttpRequest, area: Area) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    prefix = "/adminaccess" if area == "admin" else "/webaccess"
    if candidate.startswith(prefix) and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}
    ):
        return candidate
    return reverse(HOME[area])


def _context(request: HttpRequest, area: Area, **extra: Any) -> dict[str, Any]:
    base = "web/admin/base.html" if area == "admin" else "web/webaccess/base.html"
    return {
        "area": area,
        "area_title": AREA_TITLE[area],
        "ns": NS[area],
        "area_base": base,
        "next": request.GET.get("next", request.POST.get("next", "")),
        **extra,
    }


def _after_password(
    request: HttpRequest, area: Area, outcome: signin.Outcome
) -> HttpResponse | None:
    if outcome.step is Step.DONE:
        return HttpResponseRedirect(_next_url(request, area))
    if outcome.step is Step.NEEDS_TOTP:
        url = reverse(f"{NS[area]}:totp")
        nxt = request.POST.get("next", "")
        return HttpResponseRedirect(f"{url}?next={nxt}" if nxt else url)
    return None


def _microsoft_redirect(request: HttpRequest, area: Area, username: str) -> HttpResponse | None:
    """Users synchronized from Entra ID sign in with Microsoft (the username as hint)."""
    username = username.strip()
    if not username or not signin.is_directory_user(username):
        return None
    from mailvault.directory.signin import entra_account

    user = find_user(username)
    if user is None or entra_account(user) is None:
        return None
    request.session[USERNAME_KEY] = username
    url = reverse(f"{NS[area]}:login_microsoft")
    nxt = request.POST.get("next") or request.GET.get("next", "")
    return HttpResponseRedirect(f"{url}?next={nxt}" if nxt else url)


def _signs_in_with_ldap(username: str) -> bool:
    from mailvault.directory.signin import ldap_account

    user = find_user(username)
    return user is not None and ldap_account(user) is not None


@require_http_methods(["GET", "POST"])
def admin_login(request: HttpRequest) -> HttpResponse:
    area: Area = "admin"
    microsoft = _microsoft_redirect(request, area, request.POST.get("username", ""))
    if request.method == "POST" and microsoft is not None:
        return microsoft
    form = LoginForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        outcome = signin.password_step(
            request, form.cleaned_data["username"], form.cleaned_data["password"], AREA_ROLES[area]
        )
        response = _after_password(request, area, outcome)
        if response:
            return response
        error = outcome.message
        if outcome.step is Step.NO_ACCESS:
            error = "Your account has no access to Admin Access. Web Access is at /webaccess."
        status = 403 if outcome.step in (Step.LOCKED, Step.NO_ACCESS) else 401
    return render(
        request,
        "web/auth/login.html",
        _context(request, area, form=form, error=error),
        status=status,
    )


@require_http_methods(["GET", "POST"])
def web_login(request: HttpRequest) -> HttpResponse:
    """Step one of Web Access: the username decides how the user signs in."""
    area: Area = "web"
    form = UsernameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"].strip()
        request.session[USERNAME_KEY] = username
        url = reverse("webaccess:login_password")
        nxt = request.POST.get("next", "")
        return HttpResponseRedirect(f"{url}?next={nxt}" if nxt else url)
    return render(request, "web/auth/username.html", _context(request, area, form=form))


@require_http_methods(["GET", "POST"])
def web_login_password(request: HttpRequest) -> HttpResponse:
    area: Area = "web"
    username = request.session.get(USERNAME_KEY)
    if not username:
        return redirect("webaccess:login")
    if signin.is_directory_user(username) and not _signs_in_with_ldap(username):
        # Synchronized users sign in at their identity provider (Microsoft sign-in);
        # those from an LDAP directory with its password, on this page.
        microsoft = _microsoft_redirect(request, area, username)
        if microsoft is not None:
            return microsoft
        return render(
            request, "web/auth/directory_signin.html", _context(request, area, username=username)
        )
    form = PasswordOnlyForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        outcome = signin.password_step(
            request, username, form.cleaned_data["password"], AREA_ROLES[area]
        )
        response = _after_password(request, area, outcome)
        if response:
            request.session.pop(USERNAME_KEY, None)
            return response
        error = outcome.message
        if outcome.step is Step.NO_ACCESS:
            error = (
                "Your account has no access to Web Access. "
                "Ask your administrator for the Reader role."
            )
        status = 403 if outcome.step in (Step.LOCKED, Step.NO_ACCESS) else 401
    return render(
        request,
        "web/auth/password.html",
        _context(request, area, form=form, username=username, error=error),
        status=status,
    )


def _totp(request: HttpRequest, area: Area) -> HttpResponse:
    if signin.pending_user(request) is None:
        return redirect(f"{NS[area]}:login")
    form = TotpForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        outcome = signin.totp_step(request, form.cleaned_data["code"])
        if outcome.step is Step.DONE and outcome.user is not None:
            response = HttpResponseRedirect(_next_url(request, area))
            if form.cleaned_data["trust_device"]:
                response.set_cookie(
                    mfa.trust_cookie_name(outcome.user),
                    mfa.make_trust_token(outcome.user),
                    max_age=settings.MFA_TRUST_DAYS * 86400,
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure(),
                )
            return response
        if outcome.step is Step.LOCKED:
            return render(
                request,
                "web/auth/login_problem.html",
                _context(request, area, error=outcome.message),
                status=403,
            )
        error = outcome.message
        status = 401
    return render(
        request,
        "web/auth/totp.html",
        _context(request, area, form=form, error=error),
        status=status,
    )


@require_http_methods(["GET", "POST"])
def admin_totp(request: HttpRequest) -> HttpResponse:
    return _totp(request, "admin")


@require_http_methods(["GET", "POST"])
def web_totp(request: HttpRequest) -> HttpResponse:
    return _totp(request, "web")


@require_POST
def admin_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("adminaccess:login")


@require_POST
def web_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("webaccess:login")


def _password_change(request: HttpRequest, area: Area) -> HttpResponse:
    user = signed_in_user(request)
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.change_own_password(
                user,
                form.cleaned_data["old_password"],
                form.cleaned_data["new_password"],
            )
        except ValidationError as exc:
            form.add_error("new_password", exc)
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Your password has been changed.")
            return redirect(HOME[area])
    forced = bool(getattr(user, "must_change_password", False))
    return render(
        request, "web/auth/password_change.html", _context(request, area, form=form, forced=forced)
    )


@area_view("admin")
@require_http_methods(["GET", "POST"])
def admin_password(request: HttpRequest) -> HttpResponse:
    return _password_change(request, "admin")


@area_view("web")
@require_http_methods(["GET", "POST"])
def web_password(request: HttpRequest) -> HttpResponse:
    return _password_change(request, "web")


def _mfa(request: HttpRequest, area: Area) -> HttpResponse:
    user = signed_in_user(request)
    form = MfaConfirmForm(request.POST or None)
    action = request.POST.get("action", "")
    if request.method == "POST" and action == "start":
        mfa.start_enrolment(user)
        return redirect(f"{NS[area]}:mfa")
    if request.method == "POST" and action == "disable":
        # Whoever finds a session left open must not be able to drop the second factor.
        if not user.check_password(request.POST.get("password", "")):
            messages.error(request, "Enter your current password to turn two-factor sign-in off.")
            return redirect(f"{NS[area]}:mfa")
        services.reset_mfa(user)
        messages.success(request, "Two-factor sign-in is off.")
        return redirect(f"{NS[area]}:mfa")
    if request.method == "POST" and action == "confirm" and form.is_valid():
        if mfa.confirm_enrolment(user, form.cleaned_data["code"]):
            messages.success(request, "Two-factor sign-in is on.")
            return redirect(f"{NS[area]}:mfa")
        form.add_error("code", "The code is not correct. Check your device's clock and try again.")
    enrolling = bool(user.totp_secret and not user.totp_enabled)
    extra: dict[str, Any] = {"form": form, "enrolling": enrolling}
    if enrolling:
        uri = mfa.provisioning_uri(user)
        extra.update(qr_svg=mfa.qr_svg(uri), secret=user.totp_secret, uri=uri)
    return render(request, "web/auth/mfa.html", _context(request, area, **extra))


@area_view("admin")
@require_http_methods(["GET", "POST"])
def admin_mfa(request: HttpRequest) -> HttpResponse:
    return _mfa(request, "admin")


@area_view("web")
@require_http_methods(["GET", "POST"])
def web_mfa(request: HttpRequest) -> HttpResponse:
    return _mfa(request, "web")
