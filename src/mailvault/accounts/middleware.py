"""Sends a user who must change the password to the change page, whatever they ask for."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

ALLOWED_SUFFIXES = ("/password/", "/logout/")


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and getattr(user, "must_change_password", False)
            and not request.path.endswith(ALLOWED_SUFFIXES)
            and not request.path.startswith("/static/")
        ):
            area = "webaccess" if request.path.startswith("/webaccess") else "adminaccess"
            return HttpResponseRedirect(reverse(f"{area}:password"))
        return self.get_response(request)
