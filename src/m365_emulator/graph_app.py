"""The ASGI side of Graph v1.0: bearer tokens, throttling and fault injection, routing,
``$batch``. A raw ASGI app so that a fault can drop the connection mid-response."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.types import Receive, Scope, Send

from m365_emulator import graph_dir, graph_mail, graph_messages  # noqa: F401 - routes
from m365_emulator.core import Emulator, Principal, TokenError
from m365_emulator.faults import Verdict
from m365_emulator.graph_core import (
    GraphError,
    GraphRequest,
    GraphResponse,
    error_response,
    router,
)

MAILBOX_PATH = re.compile(r"^/users/([^/]+)/(messages|mailFolders|mailboxSettings)", re.IGNORECASE)
PAREN = re.compile(r"/(\w+)\('([^']*)'\)")
MAX_BATCH = 20
JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


def normalize(path: str) -> str:
    """``/me/...`` and OData key syntax (``mailFolders('inbox')``) to plain segments."""
    path = PAREN.sub(r"/\1/\2", path)
    if path.lower().startswith("/me/"):
        path = "/users/me/" + path[4:]
    return path.rstrip("/") or "/"


def _sub_path(url: str) -> str:
    """A batch sub-request's path below /v1.0, decoded (as ASGI does) and normalized."""
    path = unquote(urlsplit(url).path)
    if path.lower().startswith("/v1.0/"):
        path = path[5:]
    return normalize(path)


def throttle_verdict(verdict: Verdict) -> GraphResponse:
    headers = {"Retry-After": verdict.retry_after} if verdict.retry_after else {}
    inner = None
    if verdict.status == 429 and verdict.code == "TooManyRequests":
        inner = {"code": "429", "message": "Please retry after", "status": "429"}
    return error_response(verdict.status, verdict.code, verdict.message, headers, inner=inner)


class GraphApp:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _principal(self, headers: dict[str, str]) -> Principal:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise TokenError(401, "InvalidAuthenticationToken", "Access token is empty.")
        return self.emulator.verify_access(auth[7:].strip())

    def _mailbox_key(self, path: str, principal: Principal) -> str | None:
        found = MAILBOX_PATH.match(path)
        if not found:
            return None
        key = found.group(1)
        if key.lower() == "me":
            return principal.user_id or "me"
        user = self.emulator.tenant.find_user(key)
        return user.id if user else key.lower()

    def dispatch(self, req: GraphRequest) -> GraphResponse:
        try:
            found = router.match(req.method, req.path)
            if found is None:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Resource not found for the segment '{req.path.strip('/').split('/')[-1]}'.",
                )
            handler, params = found
            return handler(req, **params)
        except GraphError as exc:
            return exc.response()

    async def handle(self, req: GraphRequest, *, in_batch: bool = False) -> GraphResponse | Verdict:
        throttle = self.emulator.throttle
        mailbox = self._mailbox_key(req.path, req.principal)
        verdict = throttle.enter(req.principal.app_id, mailbox, req.path)
        if verdict is not None:
            if verdict.drop and not in_batch:
                return verdict
            if verdict.drop:
                verdict = Verdict(503, "ServiceNotAvailable", "Service unavailable.", None)
            return throttle_verdict(verdict)
        try:
            if throttle.faults.slow_ms:
                await asyncio.sleep(throttle.faults.slow_ms / 1000)
            if req.path == "/$batch" and req.method == "POST" and not in_batch:
                return await self._batch(req)
            return self.dispatch(req)
        finally:
            throttle.leave(req.principal.app_id, mailbox)

    async def _batch(self, req: GraphRequest) -> GraphResponse:
        requests = req.body.get("requests") if isinstance(req.body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > MAX_BATCH:
            raise GraphError(
                400,
                "BadRequest",
                f"The number of requests in the batch exceeds the limit of {MAX_BATCH}.",
            )
        ids = [str(r.get("id", "")) for r in requests]
        if len(set(ids)) != len(ids) or "" in ids:
            raise GraphError(400, "BadRequest", "Batch request ids must be unique and non-empty.")
        results: dict[str, GraphResponse] = {}
        # Like Graph: independent sub-requests run at once, at most the mailbox concurrency
        # limit of them per mailbox; those with dependsOn run afterwards in order.
        limit = self.emulator.throttle.faults.mailbox_concurrency or MAX_BATCH
        gates: dict[str | None, asyncio.Semaphore] = {}

        async def independent(sub: dict[str, Any]) -> None:
            mailbox = self._mailbox_key(_sub_path(str(sub.get("url", ""))), req.principal)
            gate = gates.setdefault(mailbox, asyncio.Semaphore(limit if mailbox else MAX_BATCH))
            async with gate:
                results[str(sub["id"])] = await self._sub(req, sub)

        await asyncio.gather(*(independent(s) for s in requests if not s.get("dependsOn")))
        for sub in requests:
            if not sub.get("dependsOn"):
                continue
            depends = [str(d) for d in sub.get("dependsOn", [])]
            if any(results[d].status >= 400 if d in results else True for d in depends):
                results[str(sub["id"])] = error_response(
                    424, "FailedDependency", "The request failed because of a failed dependency."
                )
            else:
                results[str(sub["id"])] = await self._sub(req, sub)
        responses: list[dict[str, Any]] = []
        for sid in ids:
            result = results[sid]
            body: Any = result.body
            headers = dict(result.headers)
            if isinstance(body, bytes):
                headers["Content-Type"] = result.content_type
                body = base64.b64encode(body).decode()
            elif body is not None:
                headers.setdefault("Content-Type", "application/json")
            entry = {"id": sid, "status": result.status, "headers": headers}
            if body is not None:
                entry["body"] = body
            responses.append(entry)
        return GraphResponse(200, {"responses": responses})

    async def _sub(self, parent: GraphRequest, sub: dict[str, Any]) -> GraphResponse:
        url = str(sub.get("url", ""))
        if not url.startswith("/") or url.startswith("//"):
            return error_response(400, "BadRequest", "Batch sub-request urls must be relative.")
        parts = urlsplit(url)
        path = _sub_path(url)
        headers = {str(k).lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
        child = GraphRequest(
            emulator=self.emulator,
            method=str(sub.get("method", "GET")).upper(),
            path=path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            body=sub.get("body"),
            principal=parent.principal,
            base=parent.base,
        )
        result = await self.handle(child, in_batch=True)
        assert isinstance(result, GraphResponse)
        return result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw_body = b"".join(chunks)
        host = headers.get("host", "localhost")
        base = f"{scope.get('scheme', 'https')}://{host}/v1.0"
        request_id = headers.get("client-request-id") or str(uuid.uuid4())
        path = scope["path"]
        if path.lower().startswith("/v1.0"):
            path = path[5:]
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError:
            await self._send(
                send,
                error_response(400, "BadRequest", "Unable to read JSON request payload."),
                request_id,
            )
            return
        try:
            principal = self._principal(headers)
        except TokenError as exc:
            response = error_response(exc.status, exc.code, exc.message, request_id=request_id)
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="", '
                'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
            await self._send(send, response, request_id)
            return
        req = GraphRequest(
            emulator=self.emulator,
            method=scope["method"].upper(),
            path=normalize(path),
            query=dict(
                parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            ),
            headers=headers,
            body=body,
            principal=principal,
            base=base,
        )
        try:
            result = await self.handle(req)
        except GraphError as exc:
            result = exc.response(request_id)
        if isinstance(result, Verdict):  # drop the connection mid-body
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"4096"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})
            raise ConnectionAbortedError("m365 emulator: dropped connection (fault switch)")
        await self._send(send, result, request_id)

    async def _send(self, send: Send, response: GraphResponse, request_id: str) -> None:
        if isinstance(response.body, bytes):
            payload = response.body
            content_type = response.content_type
        elif response.body is None:
            payload, content_type = b"", ""
        else:
            payload = json.dumps(response.body).encode()
            content_type = JSON_TYPE
        headers = [
            (b"request-id", request_id.encode()),
            (b"client-request-id", request_id.encode()),
        ]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        headers += [(k.lower().encode(), str(v).encode()) for k, v in response.headers.items()]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
