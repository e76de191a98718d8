"""Entra ID (login.microsoftonline.com): discovery, JWKS, token, and authorize with a
sign-in page. Admin consent and logout: :mod:`m365_emulator.consent`."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
import uuid
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from m365_emulator import pages
from m365_emulator.consent import admin_consent, logout
from m365_emulator.core import AuthCode, Emulator
from m365_emulator.signin import (
    GRAPH_DEFAULT,
    all_params,
    authority,
    emu,
    form,
    redirect_allowed,
    sign_in,
    with_query,
    with_session,
)
from m365_emulator.state import App

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def aad_error(request: Request, status: int, error: str, code: int, text: str) -> JSONResponse:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{authority(request)}/error?code={code}",
        },
        status_code=status,
    )


async def discovery(request: Request) -> Response:
    segment = request.path_params["tenant"]
    e = emu(request)
    if segment not in ("common", "organizations", "consumers") and not e.tenant_matches(segment):
        return aad_error(request, 400, "invalid_tenant", 90002, f"Tenant '{segment}' not found.")
    base = authority(request)
    issuer_tid = "{tenantid}" if segment in ("common", "organizations") else e.tenant.id
    t = segment
    return JSONResponse(
        {
            "token_endpoint": f"{base}/{t}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{t}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{issuer_tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/{t}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{t}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{t}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "oid",
                "email",
            ],
            "kerberos_endpoint": f"{base}/{t}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "code_challenge_methods_supported": ["plain", "S256"],
        }
    )


async def keys(request: Request) -> Response:
    return JSONResponse(emu(request).jwks())


def _client_auth(request: Request, data: dict[str, str]) -> tuple[str, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        raw = base64.b64decode(header[6:]).decode()
        client, _, secret = raw.partition(":")
        return client, secret
    return data.get("client_id", ""), data.get("client_secret")


async def token(request: Request) -> Response:
    e = emu(request)
    segment = request.path_params["tenant"]
    data = await form(request)
    grant = data.get("grant_type", "")
    if not e.tenant_matches(segment) and not (
        segment in ("common", "organizations") and grant != "client_credentials"
    ):
        return aad_error(
            request,
            400,
            "invalid_request",
            90002,
            f"Tenant '{segment}' not found. "
            "Check to make sure you have the correct tenant ID and are signing into the "
            "correct cloud.",
        )
    if e.throttle.faults.token_throttled:
        response = aad_error(
            request, 429, "temporarily_unavailable", 90055, "The tenant is experiencing throttling."
        )
        response.headers["Retry-After"] = "5"
        return response
    client_id, secret = _client_auth(request, data)
    app = e.tenant.apps.get(client_id)
    if app is None or (grant == "client_credentials" and not app.consented):
        return aad_error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{e.tenant.display_name}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in "
            "the tenant. You may have sent your authentication request to the wrong tenant.",
        )
    if data.get("client_assertion"):
        refused = check_assertion(request, e, app, data)
        if refused is not None:
            return refused
    elif not secret:
        return aad_error(
            request,
            401,
            "invalid_client",
            7000218,
            "The request body must contain "
            "the following parameter: 'client_assertion' or 'client_secret'.",
        )
    elif e.throttle.faults.secret_expired:
        return aad_error(
            request,
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{client_id}' are expired.",
        )
    elif not hmac.compare_digest(secret or "", app.secret):
        return aad_error(
            request,
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the "
            "request is the client secret value, not the client secret ID.",
        )
    if grant == "client_credentials":
        if data.get("scope", "") not in GRAPH_DEFAULT:
            return aad_error(
                request,
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {data.get('scope', '')} is not valid. "
                "Client credential flows must have a scope value with /.default suffixed "
                "to the resource identifier (application ID URI).",
            )
        access, lifetime = e.app_token(app)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access,
            }
        )
    if grant == "authorization_code":
        return _code_grant(request, e, app, data)
    if grant == "refresh_token":
        refresh = e.refresh.pop(data.get("refresh_token", ""), None)
        if refresh is None or refresh.client_id != app.client_id:
            return aad_error(
                request,
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid (refresh token).",
            )
        if refresh.user_id not in e.tenant.users:
            return aad_error(request, 400, "invalid_grant", 50053, "The user no longer exists.")
        return JSONResponse(
            e.user_tokens(app, refresh.user_id, refresh.scope, None, authority(request))
        )
    return aad_error(
        request,
        400,
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant}'.",
    )


def check_assertion(
    request: Request, e: Emulator, app: App, data: dict[str, str]
) -> Response | None:
    """private_key_jwt: an RS256 assertion signed with an uploaded certificate's key."""
    assertion = data["client_assertion"]
    if data.get("client_assertion_type") != ASSERTION_TYPE:
        return aad_error(request, 400, "invalid_request", 50027, "Invalid client_assertion_type.")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return aad_error(
            request, 401, "invalid_client", 50027, "JWT token is invalid or malformed."
        )
    thumb = header.get("x5t#S256") or header.get("x5t") or header.get("kid") or ""
    cert = app.certificates.get(str(thumb).rstrip("=")) or app.certificates.get(str(thumb).upper())
    if cert is None:
        return aad_error(
            request,
            401,
            "invalid_client",
            700027,
            f"Client assertion failed signature validation. Key was not found: '{thumb}'.",
        )
    base = authority(request)
    endpoints = [
        f"{base}/{request.path_params['tenant']}/oauth2/v2.0/token",
        f"{base}/{e.tenant.id}/oauth2/v2.0/token",
        f"{base}/{e.tenant.id}/oauth2/token",
    ]
    try:
        claims = jwt.decode(
            assertion,
            cert.public_key(),
            algorithms=["RS256", "PS256"],
            audience=endpoints,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return aad_error(
            request,
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )
    except jwt.PyJWTError as exc:
        return aad_error(
            request,
            401,
            "invalid_client",
            700027,
            f"Client assertion failed signature validation ({exc}).",
        )
    if claims["iss"] != app.client_id or claims["sub"] != app.client_id:
        return aad_error(
            request,
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    return None


def _code_grant(request: Request, e: Emulator, app: App, data: dict[str, str]) -> Response:
    with e.lock:
        grant = e.codes.pop(data.get("code", ""), None)
    if grant is None or grant.expires < time.time() or grant.client_id != app.client_id:
        return aad_error(
            request,
            400,
            "invalid_grant",
            70008,
            "The provided authorization code "
            "or refresh token has expired due to inactivity or was already redeemed.",
        )
    if grant.redirect_uri != data.get("redirect_uri", ""):
        return aad_error(
            request,
            400,
            "invalid_grant",
            50148,
            "The redirect_uri does not match the one used in the authorization request.",
        )
    if grant.challenge is not None:
        verifier = data.get("code_verifier", "")
        if grant.method == "S256":
            digest = hashlib.sha256(verifier.encode()).digest()
            computed = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        else:
            computed = verifier
        if not verifier or not hmac.compare_digest(computed, grant.challenge):
            return aad_error(
                request,
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not "
                "match the code_challenge supplied in the authorization request.",
            )
    return JSONResponse(
        e.user_tokens(app, grant.user_id, grant.scope, grant.nonce, authority(request))
    )


async def authorize(request: Request) -> Response:
    e = emu(request)
    segment = request.path_params["tenant"]
    params = await all_params(request)
    if segment not in ("common", "organizations") and not e.tenant_matches(segment):
        return pages.error_page("90002", f"Tenant '{segment}' not found.")
    app = e.tenant.apps.get(params.get("client_id", ""))
    if app is None:
        return pages.error_page(
            "700016",
            f"Application with identifier '{params.get('client_id', '')}' was not found in the "
            f"directory.",
        )
    redirect = params.get("redirect_uri", "")
    if not redirect_allowed(app, redirect):
        return pages.error_page(
            "50011",
            f"The redirect URI '{redirect}' specified in the request does not match the "
            f"redirect URIs configured for the application '{app.client_id}'.",
        )
    mode = params.get("response_mode", "query")
    state = params.get("state", "")

    def fail(error: str, text: str) -> Response:
        return _respond(redirect, {"error": error, "error_description": text, "state": state}, mode)

    if params.get("response_type") != "code":
        return fail(
            "unsupported_response_type",
            "AADSTS700054: response_type 'id_token' is not enabled for the application.",
        )
    method = params.get("code_challenge_method", "plain")
    if params.get("code_challenge") and method not in ("S256", "plain"):
        return fail("invalid_request", "AADSTS501491: Invalid code_challenge_method.")
    user_id, shown, fresh = await sign_in(request, e, params)
    if shown is not None:
        return shown
    if user_id is None:
        return fail(
            "login_required",
            "AADSTS50058: A silent sign-in request was sent but no user is signed in.",
        )
    if not app.consented:
        return fail(
            "consent_required",
            "AADSTS65001: The user or administrator has not consented to use the application.",
        )
    code = e.new_code(
        AuthCode(
            client_id=app.client_id,
            redirect_uri=redirect,
            user_id=user_id,
            scope=params.get("scope", "openid"),
            nonce=params.get("nonce"),
            challenge=params.get("code_challenge"),
            method=method,
            expires=time.time() + 600,
        )
    )
    info = {"code": code, "state": state, "session_state": str(uuid.uuid4())}
    return with_session(_respond(redirect, info, mode), e, user_id, fresh)


def _respond(redirect: str, params: dict[str, str], mode: str) -> Response:
    if mode == "form_post":
        fields = pages.hidden({k: v for k, v in params.items() if v})
        html = (
            f"<!doctype html><html><body onload='document.forms[0].submit()'><form method='post' "
            f"action='{pages.escape(redirect)}'>{fields}<noscript><button>Continue</button></noscript>"
            f"</form></body></html>"
        )
        return pages.HTMLResponse(html)
    return RedirectResponse(with_query(redirect, params, mode), status_code=302)


def routes() -> list[Any]:
    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", discovery),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
        Route("/{tenant}/v2.0/adminconsent", admin_consent, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/logout", logout, methods=["GET", "POST"]),
    ]
