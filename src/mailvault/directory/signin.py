"""Microsoft sign-in for users synchronized from Entra ID (OpenID Connect, auth code).

Web Access asks for the username first; a user synchronized from Entra is sent to the
tenant's ``/authorize`` with ``login_hint``, PKCE, state and nonce (MSAL builds the flow
and redeems the code). The ID token's signature is checked against the tenant's JWKS
(found through discovery), with audience, issuer and nonce. The Mailvault user is the one
linked to (``tid``, ``oid``), never found by address; a disabled or removed user, or a
suspended tenant, gets no session.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import msal

from mailvault.accounts.models import User
from mailvault.directory.models import DirectoryService, SyncedObject
from mailvault.sources.graph import GraphSettings
from mailvault.sources.graph.client import msal_http_client

log = logging.getLogger("mailvault.directory.signin")


class SignInError(RuntimeError):
    """The Microsoft sign-in did not identify an allowed user; the text is for the user."""


@dataclass(frozen=True)
class EntraAccount:
    tenant_id: str
    user: User


def entra_account(user: User) -> EntraAccount | None:
    """The Entra tenant a synchronized user signs in at, or None (not from Entra)."""
    link = (
        SyncedObject.unscoped.select_related("service")
        .filter(user=user, kind=SyncedObject.Kind.USER, service__kind=DirectoryService.Kind.ENTRA)
        .first()
    )
    if link is None or not link.service.entra_tenant_id:
        return None
    return EntraAccount(link.service.entra_tenant_id, user)


def ldap_account(user: User) -> SyncedObject | None:
    """The link of a user synchronized from an LDAP directory (who signs in with the
    directory's password), or None."""
    return (
        SyncedObject.unscoped.select_related("service")
        .filter(user=user, kind=SyncedObject.Kind.USER, service__kind=DirectoryService.Kind.LDAP)
        .first()
    )


def _app(config: GraphSettings, tenant_id: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        config.client_id,
        client_credential=config.credential(),
        authority=f"{config.authority_base}/{tenant_id}",
        instance_discovery=False,
        http_client=msal_http_client(config),
        timeout=30,
    )


def start(account: EntraAccount, redirect_uri: str, login_hint: str) -> dict[str, Any]:
    """The MSAL auth-code flow (keep it in the session); ``flow["auth_uri"]`` is where
    the browser goes."""
    config = GraphSettings.from_django()
    try:
        flow = _app(config, account.tenant_id).initiate_auth_code_flow(
            scopes=[], redirect_uri=redirect_uri, login_hint=login_hint
        )
    except Exception as exc:
        log.warning("microsoft sign-in for %s not started: %s", account.user, exc)
        raise SignInError("Microsoft sign-in is not reachable right now. Try again later.") from exc
    flow["mailvault_tenant_id"] = account.tenant_id
    return dict(flow)


def _verify_id_token(
    config: GraphSettings, tenant_id: str, id_token: str, nonce: str
) -> dict[str, Any]:
    discovery_url = f"{config.authority_base}/{tenant_id}/v2.0/.well-known/openid-configuration"
    with httpx.Client(verify=config.ssl_context(), timeout=20) as http:
        discovery = http.get(discovery_url).raise_for_status().json()
        jwks = http.get(discovery["jwks_uri"]).raise_for_status().json()
    header = jwt.get_unverified_header(id_token)
    keys = jwt.PyJWKSet.from_dict(jwks)
    key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
    if key is None:
        raise SignInError("The sign-in token was signed with an unknown key.")
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=config.client_id,
        issuer=f"{config.authority_base}/{tenant_id}/v2.0",
        options={"require": ["exp", "iat", "aud", "iss", "tid", "oid"]},
    )
    # MSAL sends the SHA-256 (hex) of the flow's nonce in the authorize request.
    expected = {nonce, hashlib.sha256(nonce.encode()).hexdigest()} if nonce else set()
    if nonce and claims.get("nonce") not in expected:
        raise SignInError("The sign-in token does not belong to this sign-in (nonce).")
    return claims


def finish(flow: dict[str, Any], response: dict[str, str]) -> User:
    """Redeem the code, verify the ID token, and return the linked, active user."""
    if response.get("error"):
        text = response.get("error_description", "").splitlines()[0:1]
        raise SignInError(
            f"Microsoft sign-in was not completed: {response['error']}"
            + (f" ({text[0]})" if text else "")
        )
    config = GraphSettings.from_django()
    tenant_id = flow.get("mailvault_tenant_id", "")
    msal_flow = {k: v for k, v in flow.items() if k != "mailvault_tenant_id"}
    try:
        result = _app(config, tenant_id).acquire_token_by_auth_code_flow(msal_flow, response)
    except ValueError as exc:  # state mismatch and the like
        raise SignInError(
            "This sign-in answer does not match the sign-in that was started."
        ) from exc
    if "error" in result or "id_token" not in result:
        raise SignInError(
            f"Microsoft sign-in failed: {result.get('error', 'no ID token')}. Try again."
        )
    try:
        claims = _verify_id_token(config, tenant_id, result["id_token"], flow.get("nonce", ""))
    except (jwt.PyJWTError, httpx.HTTPError, KeyError) as exc:
        raise SignInError(f"The sign-in token could not be verified: {exc}") from exc
    tid, oid = str(claims["tid"]), str(claims["oid"])
    link = (
        SyncedObject.unscoped.select_related("user", "user__tenant")
        .filter(
            kind=SyncedObject.Kind.USER,
            external_id=oid,
            service__kind=DirectoryService.Kind.ENTRA,
            service__entra_tenant_id=tid,
        )
        .first()
    )
    if link is None or link.user is None:
        raise SignInError("Your Microsoft account is not a user of this archive.")
    user = link.user
    if not user.is_active or not user.tenant.is_active:
        raise SignInError("Your account is disabled. Ask your administrator.")
    log.info("microsoft sign-in of %s (tid %s, oid %s)", user, tid, oid)
    return user
