"""Web Access: browse the mailboxes a user may read, read and download messages.

Which mailboxes and messages a user may read is decided in ``archive.access`` and
``archive.services.readable_mailboxes`` only; a message outside them is a 404 here.
"""

from __future__ import annotations

from urllib.parse import quote

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_sameorigin

from mailvault.archive import access, blobs, rendering
from mailvault.archive.models import Folder, Mailbox, Message
from mailvault.archive.services import readable_mailboxes
from mailvault.compliance import audit
from mailvault.search import QuerySyntaxError, SearchResult
from mailvault.search.services import search_for_user
from mailvault.search.types import SortOrder
from mailvault.web.access import signed_in_user, web_view

PAGE_SIZE = 50
SORTS = {
    "date": "date",
    "subject": "subject",
    "from": "from_address",
    "size": "size",
}

BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:{remote}; "
    "font-src data:; sandbox allow-popups allow-popups-to-escape-sandbox"
)


def _sorted(messages: QuerySet[Message], sort: str, direction: str) -> QuerySet[Message]:
    field = SORTS.get(sort, "date")
    prefix = "" if direction == "asc" else "-"
    return messages.order_by(f"{prefix}{field}", "-pk")


@web_view
def home(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    mailboxes = list(readable_mailboxes(user).order_by("primary_address"))
    trees = [(mailbox, access.folder_tree(mailbox)) for mailbox in mailboxes]
    mailbox: Mailbox | None = None
    folder: Folder | None = None
    messages: QuerySet[Message] = Message.objects.none()
    if request.GET.get("mailbox"):
        mailbox = get_object_or_404(readable_mailboxes(user), pk=_int(request.GET["mailbox"]))
        messages = Message.objects.filter(placements__mailbox=mailbox)
        if request.GET.get("folder"):
            folder = get_object_or_404(
                Folder.objects, pk=_int(request.GET["folder"]), mailbox=mailbox
            )
            messages = messages.filter(placements__folder=folder)
        messages = messages.distinct()
    sort = request.GET.get("sort", "date")
    direction = request.GET.get("dir", "desc")
    page = Paginator(_sorted(messages, sort, direction), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "web/webaccess/home.html",
        {
            "trees": trees,
            "mailbox": mailbox,
            "folder": folder,
            "page": page,
            "sort": sort,
            "dir": direction,
        },
    )


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise Http404 from exc


def _readable_message(request: HttpRequest, message_id: int) -> Message:
    return get_object_or_404(access.readable_messages(signed_in_user(request)), pk=message_id)


@web_view
def message_view(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _readable_message(request, message_id)
    allow_remote = request.GET.get("remote") == "1"
    rendered = rendering.render_message(blobs.read_original(message), allow_remote=allow_remote)
    audit.record_message_access(request, "message.view", message)
    return render(
        request,
        "web/webaccess/message.html",
        {"message": message, "rendered": rendered, "allow_remote": allow_remote},
    )


@web_view
@xframe_options_sameorigin
def message_body(request: HttpRequest, message_id: int) -> HttpResponse:
    """The sanitized HTML body alone, framed by the reading pane under a strict CSP."""
    message = _readable_message(request, message_id)
    allow_remote = request.GET.get("remote") == "1"
    rendered = rendering.render_message(blobs.read_original(message), allow_remote=allow_remote)
    response = HttpResponse(
        "<!doctype html><meta charset='utf-8'><base target='_blank'>" + rendered.html,
        content_type="text/html; charset=utf-8",
    )
    response["Content-Security-Policy"] = BODY_CSP.format(
        remote=" https: http:" if allow_remote else ""
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


def _attachment_response(data: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type or "application/octet-stream")
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@web_view
def message_download(request: HttpRequest, message_id: int) -> HttpResponse:
    """The original, byte for byte, as a .eml file."""
    message = _readable_message(request, message_id)
    raw = blobs.read_original(message)
    audit.record_message_access(request, "message.download", message)
    return _attachment_response(raw, f"message-{message.pk}.eml", "message/rfc822")


@web_view
def attachment_download(request: HttpRequest, message_id: int, index: int) -> HttpResponse:
    message = _readable_message(request, message_id)
    found = rendering.attachment_payload(blobs.read_original(message), index)
    if found is None:
        raise Http404
    filename, _content_type, data = found
    audit.record_message_access(request, "attachment.download", message)
    # Always served as a download, never rendered inline in Mailvault's origin.
    return _attachment_response(data, filename, "application/octet-stream")


@web_view
def search(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    query = request.GET.get("q", "").strip()
    sort: SortOrder = "relevance" if request.GET.get("sort") == "relevance" else "date"
    page_number = max(1, _int(request.GET.get("page") or "1"))
    result: SearchResult | None = None
    error = ""
    if query:
        try:
            result = search_for_user(
                user, query, sort=sort, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE
            )
        except QuerySyntaxError as exc:
            error = str(exc)
    messages = {}
    if result is not None:
        ids = [hit.message_id for hit in result.hits]
        messages = {m.pk: m for m in access.readable_messages(user).filter(pk__in=ids)}
    hits = [
        (hit, messages[hit.message_id])
        for hit in (result.hits if result else [])
        if hit.message_id in messages
    ]
    return render(
        request,
        "web/webaccess/search.html",
        {
            "q": query,
            "sort": sort,
            "error": error,
            "hits": hits,
            "total": result.total if result else 0,
            "total_is_estimate": bool(result and result.total_is_estimate),
            "page_number": page_number,
            "has_next": bool(result and result.total > page_number * PAGE_SIZE),
        },
        status=400 if error else 200,
    )
