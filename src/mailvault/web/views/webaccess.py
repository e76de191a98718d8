"""Web Access: the reader's archive."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mailvault.web.access import web_view


@web_view
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "web/webaccess/home.html", {"mailboxes": []})
