"""Shared by the Entra pages: form parsing, redirect URI rules, and the sign-in step with
its session cookie (a signed-in user skips the form until ``prompt=login``)."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from m365_emulator import pages
from m365_emulator.core import Emulator
from m365_emulator.state import App

SESSION_COOKIE = "ESTSAUTH"
GRAPH_DEFAULT = (
    "https://graph.microsoft.com/.default",
    "00000003-0000-0000-c000-000000000000/.default",
)


def emu(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def authority(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def redirect_allowed(app: App, uri: str) -> bool:
    """Exact match against the registered URIs; with none registered, any loopback URI [D]."""
    if app.redirect_uris:
        return uri in app.redirect_uris
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("localhost", "127.0.0.1", "::1")


def with_query(uri: str, params: dict[str, str], mode: str = "query") -> str:
    sep = "#" if mode == "fragment" else ("&" if "?" in uri else "?")
    return uri + sep + urlencode({k: v for k, v in params.items() if v is not None})


def session_user(request: Request, e: Emulator) -> str | None:
    user_id = e.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    return user_id if user_id in e.tenant.users else None


def check_login(e: Emulator, login: str, password: str) -> tuple[str | None, str]:
    user = e.tenant.find_user(login.strip())
    if user is None:
        return None, "AADSTS50034: We couldn't find an account with that username."
    if not hmac.compare_digest(password, e.tenant.user_password):
        return None, "AADSTS50126: Your account or password is incorrect."
    if not user.account_enabled:
        return None, "AADSTS50057: Your account has been locked. Contact your support person."
    return user.id, ""


async def sign_in(
    request: Request, e: Emulator, params: dict[str, str]
) -> tuple[str | None, Response | None, bool]:
    """The signed-in user, a sign-in page to show, and whether a new session was made."""
    forced = params.get("prompt") in ("login", "select_account")
    if request.method == "POST" and params.get("step") == "signin":
        user_id, problem = check_login(e, params.get("login", ""), params.get("passwd", ""))
        if user_id:
            return user_id, None, True
        kept = {k: v for k, v in params.items() if k not in ("login", "passwd", "step")}
        return (
            None,
            pages.sign_in_form(request.url.path, kept, hint=params.get("login", ""), error=problem),
            False,
        )
    user_id = session_user(request, e)
    if user_id and not forced:
        return user_id, None, False
    if params.get("prompt") == "none":
        return None, None, False
    kept = {k: v for k, v in params.items() if k != "step"}
    return (
        None,
        pages.sign_in_form(request.url.path, kept, hint=params.get("login_hint", "")),
        False,
    )


def with_session(response: Response, e: Emulator, user_id: str, fresh: bool) -> Response:
    if fresh:
        response.set_cookie(
            SESSION_COOKIE, e.new_session(user_id), httponly=True, secure=True, samesite="none"
        )
    return response


async def all_params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        params.update(await form(request))
    return params


def kept_params(params: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in params.items()
        if k not in ("login", "passwd", "step", "decision", "prompt")
    }
