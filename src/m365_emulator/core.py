"""The running emulator: tenant state, signing key, grants, sessions and settings.

Everything a route handler needs hangs off one :class:`Emulator`. Consent, the app's
redirect URIs and journal rules are saved to ``settings.json`` in the state dir so a
restarted ``make run`` remembers them; mailbox and directory changes are in memory only
(the fixture is rebuilt at start).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from m365_emulator.faults import Throttle
from m365_emulator.fixture import FixtureOptions, build
from m365_emulator.state import App, Tenant

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


class TokenError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    nonce: str | None
    challenge: str | None
    method: str
    expires: float


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    scope: str


@dataclass
class Principal:
    """Who a Graph request acts as (from a verified access token)."""

    app_id: str
    roles: list[str]
    scopes: list[str]
    user_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


def _signing_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


class Emulator:
    def __init__(self, state_dir: Path, options: FixtureOptions) -> None:
        self.state_dir = state_dir
        self.options = options
        state_dir.mkdir(parents=True, exist_ok=True)
        self.tenant: Tenant = build(options)
        self.throttle = Throttle()
        self.key = _signing_key(state_dir / "signing.key")
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha1(public).digest()).decode().rstrip("=")  # noqa: S324 - a key id, like Entra's x5t
        self.codes: dict[str, AuthCode] = {}
        self.refresh: dict[str, RefreshGrant] = {}
        self.sessions: dict[str, str] = {}
        self.token_epoch = 0  # access tokens of an older epoch are expired (the switch)
        # Called (in-process tests) with each deletion log entry just before the message
        # is deleted, under the tenant lock.
        self.deletion_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.lock = threading.Lock()
        self.journal: Any = None  # set by the app factory (journal.JournalService)
        self._load_settings()

    def rebuild(self) -> None:
        """Seed the tenant afresh from the fixture (consent and redirect URIs are kept;
        delta tokens issued before answer 410)."""
        consented, uris, generation = (
            self.app.consented,
            self.app.redirect_uris,
            self.tenant.generation,
        )
        tenant = build(self.options)
        tenant.generation = generation + 1
        app = next(iter(tenant.apps.values()))
        app.consented, app.redirect_uris = consented, uris
        app.certificates = self.app.certificates
        self.tenant = tenant
        if self.journal is not None:
            self.journal.tenant = tenant

    # --- settings ----------------------------------------------------------------------
    @property
    def app(self) -> App:
        return next(iter(self.tenant.apps.values()))

    def _load_settings(self) -> None:
        path = self.state_dir / "settings.json"
        if not path.exists():
            return
        data = json.loads(path.read_text())
        self.app.consented = bool(data.get("consented", self.app.consented))
        self.app.redirect_uris = list(data.get("redirect_uris", []))
        self.saved_journal = data.get("journal_rules", [])

    def save_settings(self) -> None:
        data = {
            "consented": self.app.consented,
            "redirect_uris": self.app.redirect_uris,
            "journal_rules": self.journal.export() if self.journal else [],
        }
        (self.state_dir / "settings.json").write_text(json.dumps(data, indent=2))

    def set_consent(self, granted: bool) -> None:
        self.app.consented = granted
        self.save_settings()

    def tenant_matches(self, segment: str) -> bool:
        return segment.lower() == self.tenant.id or self.tenant.knows_domain(segment)

    # --- tokens ------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        jwk["issuer"] = "https://login.microsoftonline.com/{tenantid}/v2.0"
        return {"keys": [jwk]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def _base_claims(self, lifetime: int) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "uti": secrets.token_urlsafe(16),
            "xms_emu_epoch": self.token_epoch,
        }

    def app_token(self, app: App) -> tuple[str, int]:
        lifetime = self.throttle.faults.token_lifetime
        roles = self.throttle.faults.roles
        claims = self._base_claims(lifetime) | {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{self.tenant.id}/",
            "idp": f"https://sts.windows.net/{self.tenant.id}/",
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "roles": list(app.app_roles if roles is None else roles),
            "tid": self.tenant.id,
            "ver": "1.0",
        }
        if not claims["roles"]:
            del claims["roles"]
        return self._sign(claims), lifetime

    def user_tokens(
        self, app: App, user_id: str, scope: str, nonce: str | None, authority: str
    ) -> dict[str, Any]:
        user = self.tenant.users[user_id]
        lifetime = self.throttle.faults.token_lifetime
        granted = [s for s in scope.split() if s]
        graph_scopes = [
            s for s in granted if s not in ("openid", "profile", "email", "offline_access")
        ]
        access = self._sign(
            self._base_claims(lifetime)
            | {
                "aud": GRAPH_AUDIENCE,
                "iss": f"https://sts.windows.net/{self.tenant.id}/",
                "appid": app.client_id,
                "idtyp": "user",
                "oid": user.id,
                "sub": user.id,
                "tid": self.tenant.id,
                "upn": user.user_principal_name,
                "name": user.display_name,
                "scp": " ".join(graph_scopes or ["User.Read"]),
                "ver": "1.0",
            }
        )
        out: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(graph_scopes or ["User.Read"])
            + " "
            + " ".join(s for s in granted if s in ("openid", "profile", "email", "offline_access")),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
        }
        out["scope"] = out["scope"].strip()
        if "openid" in granted:
            id_claims = self._base_claims(3600) | {
                "aud": app.client_id,
                "iss": f"{authority}/{self.tenant.id}/v2.0",
                "tid": self.tenant.id,
                "oid": user.id,
                "sub": base64.urlsafe_b64encode(
                    hashlib.sha256(f"{user.id}/{app.client_id}".encode()).digest()
                )
                .decode()
                .rstrip("="),
                "preferred_username": user.user_principal_name,
                "name": user.display_name,
                "ver": "2.0",
            }
            if user.mail and "email" in granted:
                id_claims["email"] = user.mail
            if nonce:
                id_claims["nonce"] = nonce
            out["id_token"] = self._sign(id_claims)
        if "offline_access" in granted:
            token = secrets.token_urlsafe(48)
            self.refresh[token] = RefreshGrant(app.client_id, user_id, scope)
            out["refresh_token"] = token
        info = json.dumps({"uid": user.id, "utid": self.tenant.id}).encode()
        out["client_info"] = base64.urlsafe_b64encode(info).decode().rstrip("=")
        return out

    def verify_access(self, token: str) -> Principal:
        """A Graph bearer token, or :class:`TokenError` as Graph would answer it."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                audience=[GRAPH_AUDIENCE, GRAPH_APP_ID],
                options={"require": ["exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            ) from exc
        except jwt.PyJWTError as exc:
            raise TokenError(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            ) from exc
        if claims.get("xms_emu_epoch", -1) < self.token_epoch:
            raise TokenError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        if claims.get("tid") != self.tenant.id:
            raise TokenError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        app = self.tenant.apps.get(claims.get("appid", ""))
        if app is None or (claims.get("idtyp") == "app" and not app.consented):
            raise TokenError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        return Principal(
            app_id=claims["appid"],
            roles=list(claims.get("roles", [])),
            scopes=str(claims.get("scp", "")).split(),
            user_id=claims.get("oid") if claims.get("idtyp") == "user" else None,
            claims=claims,
        )

    def new_code(self, grant: AuthCode) -> str:
        code = "1.A" + secrets.token_urlsafe(48)
        with self.lock:
            self.codes[code] = grant
        return code

    def new_session(self, user_id: str) -> str:
        session = str(uuid.uuid4())
        with self.lock:
            self.sessions[session] = user_id
        return session
