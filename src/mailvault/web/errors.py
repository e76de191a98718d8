"""Error pages that say what happened and leak nothing."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

log = logging.getLogger("mailvault.web.errors")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    log.warning("CSRF failure on %s %s: %s", request.method, request.path, reason)
    return render(
        request,
        "web/error.html",
        {
            "title": "The form has expired",
            "text": "For your security the form could not be accepted (it may have been open "
            "too long, or cookies are blocked). Please reload the page and try again.",
        },
        status=403,
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    log.info("404 for %s %s by %s", request.method, request.path, request.user)
    return render(
        request,
        "web/error.html",
        {"title": "Not found", "text": "There is nothing here, or you have no access to it."},
        status=404,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "web/error.html",
        {"title": "Something went wrong", "text": "The error has been logged."},
        status=500,
    )
