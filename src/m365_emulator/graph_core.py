"""Microsoft Graph plumbing: requests, responses, errors, routing, paging, query options.

Handlers are plain functions ``(GraphRequest, **path_params) -> GraphResponse`` so the
same code serves a direct request and a ``$batch`` sub-request.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from m365_emulator.core import Emulator, Principal


@dataclass
class GraphRequest:
    emulator: Emulator
    method: str
    path: str  # below /v1.0, e.g. "/users/{id}/messages"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    principal: Principal
    base: str  # "https://host:port/v1.0"

    def prefer(self, name: str) -> str | None:
        """A ``Prefer`` preference's value (``odata.maxpagesize=50``, ``IdType="ImmutableId"``)."""
        for item in self.headers.get("prefer", "").split(","):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == name.lower():
                return value.strip().strip('"')
        return None

    @property
    def immutable(self) -> bool:
        return (self.prefer("IdType") or "").lower() == "immutableid"


@dataclass
class GraphResponse:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self, request_id: str | None = None) -> GraphResponse:
        return error_response(self.status, self.code, self.message, self.headers, request_id)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    inner: dict[str, Any] | None = None,
) -> GraphResponse:
    rid = request_id or str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    inner_error = {"date": stamp, "request-id": rid, "client-request-id": rid}
    inner_error.update(inner or {})
    body = {"error": {"code": code, "message": message, "innerError": inner_error}}
    return GraphResponse(status, body, dict(headers or {}))


def not_found(code: str = "Request_ResourceNotFound", what: str = "") -> GraphError:
    return GraphError(
        404,
        code,
        f"Resource '{what}' does not exist or one of its queried reference-property objects "
        f"are not present.",
    )


Handler = Callable[..., GraphResponse]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        pieces = re.split(r"\{(\w+)\}", pattern)
        regex = (
            "^"
            + "".join(
                f"(?P<{piece}>[^/]+)" if i % 2 else re.escape(piece)
                for i, piece in enumerate(pieces)
            )
            + "/?$"
        )

        def register(handler: Handler) -> Handler:
            self.routes.append((method, re.compile(regex, re.IGNORECASE), handler))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        allowed = False
        for route_method, regex, handler in self.routes:
            found = regex.match(path)
            if found:
                if route_method == method:
                    return handler, found.groupdict()
                allowed = True
        if allowed:
            raise GraphError(405, "Request_BadRequest", f"Method {method} not allowed here.")
        return None


router = Router()


# --- tokens (skip and delta) -----------------------------------------------------------
def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphError(400, "Request_BadRequest", f"Invalid {kind} token.") from exc
    if not isinstance(data, dict):
        raise GraphError(400, "Request_BadRequest", f"Invalid {kind} token.")
    return data


def link(req: GraphRequest, path: str, params: dict[str, str]) -> str:
    return f"{req.base}{quote(path, safe='/()=$')}?{urlencode(params, safe='$')}"


# --- query options ---------------------------------------------------------------------
def top(req: GraphRequest, default: int, maximum: int) -> int:
    raw = req.query.get("$top")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.",
        )
    return int(raw)


def select(req: GraphRequest, known: Iterable[str], type_name: str) -> list[str] | None:
    raw = req.query.get("$select")
    if not raw:
        return None
    names = [s.strip() for s in raw.split(",") if s.strip()]
    known_set = {k.lower(): k for k in known}
    chosen = []
    for name in names:
        if name.lower() not in known_set:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
        chosen.append(known_set[name.lower()])
    return chosen


def project(
    item: dict[str, Any], chosen: Iterable[str] | None, default: Iterable[str]
) -> dict[str, Any]:
    keys = list(chosen) if chosen is not None else list(default)
    if "id" not in keys:
        keys.insert(0, "id")
    return {k: item.get(k) for k in keys}


_CLAUSE = re.compile(
    r"^\s*(?:(?P<fn>startswith|endswith)\((?P<fprop>\w+),\s*'(?P<fval>(?:[^']|'')*)'\)"
    r"|(?P<prop>\w+)\s+(?P<op>eq|ne)\s+(?P<val>'(?:[^']|'')*'|true|false|null|-?\d+)"
    r"|(?P<inprop>\w+)\s+in\s+\((?P<inlist>[^)]*)\)"
    r"|(?P<anyprop>\w+)/any\(\w+:\s*\w+\s+eq\s+'(?P<anyval>(?:[^']|'')*)'\))\s*$",
    re.IGNORECASE,
)


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


Test = Callable[[dict[str, Any]], bool]


def _affix_test(name: str, value: str, fn: str) -> Test:
    def test(item: dict[str, Any]) -> bool:
        current = item.get(name)
        if not isinstance(current, str):
            return False
        lowered, wanted = current.lower(), value.lower()
        return lowered.startswith(wanted) if fn == "startswith" else lowered.endswith(wanted)

    return test


def _eq_test(name: str, values: list[Any], negate: bool) -> Test:
    def test(item: dict[str, Any]) -> bool:
        return any(_same(item.get(name), v) for v in values) != negate

    return test


def _any_test(name: str, value: Any) -> Test:
    def test(item: dict[str, Any]) -> bool:
        return any(_same(x, value) for x in item.get(name) or [])

    return test


def compile_filter(
    req: GraphRequest, known: Iterable[str]
) -> Callable[[dict[str, Any]], bool] | None:
    """The few ``$filter`` forms directory syncs use; ``endswith`` needs the advanced
    query headers, as on Graph."""
    raw = req.query.get("$filter")
    if not raw:
        return None
    known_set = {k.lower(): k for k in known}
    tests: list[Test] = []
    advanced = (
        req.headers.get("consistencylevel", "").lower() == "eventual"
        and req.query.get("$count", "").lower() == "true"
    )
    for clause in re.split(r"\s+and\s+", raw, flags=re.IGNORECASE):
        found = _CLAUSE.match(clause)
        prop = found and (found["fprop"] or found["prop"] or found["inprop"] or found["anyprop"])
        if not found or not prop or prop.lower() not in known_set:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified.",
            )
        name = known_set[prop.lower()]
        if found["fn"]:
            value, fn = _literal(f"'{found['fval']}'"), found["fn"].lower()
            if fn == "endswith" and not advanced:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Operator 'endsWith' is not supported because the "
                    "'ConsistencyLevel:eventual' header is missing. Refer to "
                    "https://aka.ms/graph-docs/advanced-queries for more information",
                )
            tests.append(_affix_test(name, str(value), fn))
        elif found["op"]:
            value, negate = _literal(found["val"]), found["op"].lower() == "ne"
            if negate and not advanced:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Operator 'ne' is not supported because the 'ConsistencyLevel:eventual' "
                    "header is missing.",
                )
            tests.append(_eq_test(name, [value], negate))
        elif found["inprop"]:
            values = [_literal(v.strip()) for v in found["inlist"].split(",") if v.strip()]
            tests.append(_eq_test(name, values, False))
        else:
            value = _literal(f"'{found['anyval']}'")
            tests.append(_any_test(name, value))
    return lambda item: all(test(item) for test in tests)


def page_size(req: GraphRequest, default: int, maximum: int) -> int:
    raw = req.prefer("odata.maxpagesize")
    if raw and raw.isdigit():
        return max(1, min(int(raw), maximum))
    return default


def context(req: GraphRequest, fragment: str) -> str:
    return f"{req.base}/$metadata#{fragment}"
