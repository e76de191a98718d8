"""Request bodies over the limit are refused before Django reads them (web/body_limit.py).

Django's ASGI handler spools a whole body to disk before any view runs; these tests drive
the ASGI applications directly with a body arriving in pieces, as uvicorn hands it over.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_django import Settings

from mailvault.web.body_limit import BodyLimit


def call(app: Any, path: str, chunks: list[bytes], *, declared: int | None) -> dict[str, Any]:
    """Send a POST with ``chunks`` as its body; what the application answered, and how
    many body pieces it asked for."""
    headers = [(b"content-type", b"application/octet-stream")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    pieces = list(chunks)
    answer: dict[str, Any] = {"status": None, "body": b"", "read": 0}

    async def receive() -> dict[str, Any]:
        if not pieces:
            return {"type": "http.disconnect"}
        answer["read"] += 1
        body = pieces.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pieces)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    # A thread of its own: the browser tests' Playwright keeps an event loop running in
    # the main thread for the whole session.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, app(scope, receive, send)).result()
    return answer


async def body_length(scope: Any, receive: Any, send: Any) -> None:
    """A real ASGI application that reads the whole body and answers its length."""
    total = 0
    while True:
        message = await receive()
        total += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(total).encode()})


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    app = BodyLimit(body_length, lambda path: 1000)
    answer = call(app, "/x/", [b"a" * 600, b"a" * 600], declared=1200)
    assert answer["status"] == 413
    assert answer["read"] == 0  # not one byte of the body was read
    assert b"at most 1,000 bytes" in answer["body"]


def test_a_body_growing_past_the_limit_is_cut_off_there() -> None:
    app = BodyLimit(body_length, lambda path: 1000)
    chunks = [b"a" * 400] * 10  # no Content-Length (chunked), 4,000 bytes
    answer = call(app, "/x/", chunks, declared=None)
    assert answer["status"] == 413
    assert answer["read"] == 3  # 1,200 bytes read, then refused: the rest never read
    lying = call(app, "/x/", [b"a" * 400] * 10, declared=500)
    assert (lying["status"], lying["read"]) == (413, 3)


def test_bodies_within_the_limit_reach_the_application() -> None:
    app = BodyLimit(body_length, lambda path: 1000 if path == "/small/" else 10_000)
    assert call(app, "/small/", [b"a" * 500, b"a" * 500], declared=1000)["body"] == b"1000"
    assert call(app, "/big/", [b"a" * 4000] * 2, declared=None)["body"] == b"8000"


def test_mailvault_limits_uploads_by_the_import_limit_and_the_rest_by_the_request_limit(
    settings: Settings,
) -> None:
    from mailvault import asgi

    settings.MAILVAULT_IMPORT_UPLOAD_MAX_BYTES = 5 << 20
    settings.MAILVAULT_REQUEST_MAX_BYTES = 1 << 20
    assert asgi._body_limit("/adminaccess/imports/upload/") == (5 << 20) + asgi.UPLOAD_OVERHEAD
    assert asgi._body_limit("/webaccess/search/") == 1 << 20
    # The real application: refused before Django (no session, no database) is reached.
    answer = call(asgi.application, "/webaccess/search/", [b"x"], declared=2 << 20)
    assert answer["status"] == 413
