"""Microsoft Graph over httpx, tokens from MSAL: the one place for every Graph rule.

Paging (``@odata.nextLink`` followed verbatim, only to the Graph host), delta queries
(the last page's ``@odata.deltaLink``; ``410 Gone`` raises :class:`ResyncRequired` with
the fresh query from ``Location``), ``Retry-After`` (seconds, fractional too, or an HTTP
date) on 429 and 503, exponential backoff with jitter when it is missing and after
dropped connections, at most four concurrent requests per mailbox, and a renewed token
after a 401. The same code talks to the real cloud or to the emulator: only the two
base URLs in settings differ.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.conf import settings

log = logging.getLogger("mailvault.sources.graph")

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MAILBOX_CONCURRENCY = 4
MAX_WAIT_SECONDS = 120.0
RETRY_STATUSES = {429, 500, 502, 503, 504}

# AADSTS codes the token endpoint answers with, and what an admin should do about them.
AADSTS_HINTS: dict[int, str] = {
    700016: "Mailvault's app is not (or no longer) consented in this tenant: connect the "
    "tenant again (admin consent).",
    7000215: "The app's client secret is wrong (MAILVAULT_M365_CLIENT_SECRET).",
    7000222: "The app's client secret has expired: create a new one and set it.",
    90002: "The tenant does not exist.",
    65001: "Admin consent is missing: connect the tenant (admin consent).",
    90094: "Admin consent is required: connect the tenant (admin consent).",
    90055: "The tenant is throttled by Entra ID; try again later.",
}


class GraphError(RuntimeError):
    """Graph answered with an error (or could not be reached); ``code`` is Graph's."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TokenError(GraphError):
    """No access token: the consent, the secret or the tenant is the problem."""

    def __init__(self, message: str, *, error: str = "", aadsts: int | None = None) -> None:
        super().__init__(message, status=401, code=error)
        self.aadsts = aadsts


class ResyncRequired(GraphError):
    """410 Gone on a delta query: start again from ``location`` (a fresh full query)."""

    def __init__(self, message: str, *, code: str, location: str) -> None:
        super().__init__(message, status=410, code=code)
        self.location = location


@dataclass
class GraphSettings:
    authority_base: str
    graph_base: str
    client_id: str
    client_secret: str
    ca_bundle: str = ""
    max_retries: int = 8
    certificate_path: str = ""  # PEM: certificate + private key (private_key_jwt)

    @classmethod
    def from_django(cls) -> GraphSettings:
        return cls(
            authority_base=settings.MAILVAULT_M365_AUTHORITY_BASE,
            graph_base=settings.MAILVAULT_M365_GRAPH_BASE,
            client_id=settings.MAILVAULT_M365_CLIENT_ID,
            client_secret=settings.MAILVAULT_M365_CLIENT_SECRET,
            ca_bundle=settings.MAILVAULT_M365_CA_BUNDLE,
            max_retries=settings.MAILVAULT_M365_MAX_RETRIES,
            certificate_path=settings.MAILVAULT_M365_CLIENT_CERTIFICATE,
        )

    def credential(self) -> str | dict[str, str]:
        """The client secret, or the certificate (key, SHA-1 thumbprint) when one is set."""
        if not self.certificate_path:
            return self.client_secret
        pem = Path(self.certificate_path).read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
        thumbprint = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - Entra's x5t
        return {
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "thumbprint": thumbprint,
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        }

    @property
    def verify(self) -> str | bool:
        """For requests (MSAL): the CA bundle's path, or the system store."""
        return self.ca_bundle or True

    def ssl_context(self) -> ssl.SSLContext:
        """For httpx: the CA bundle, or the system store."""
        if self.ca_bundle:
            return ssl.create_default_context(cafile=self.ca_bundle)
        return ssl.create_default_context()


@dataclass
class Stats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    @property
    def per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.requests / elapsed if elapsed > 0 else 0.0


def msal_http_client(config: GraphSettings) -> requests.Session:
    """The HTTP session MSAL uses. With a CA bundle of our own the environment is not
    trusted: requests lets ``REQUESTS_CA_BUNDLE`` override a session's ``verify``."""
    session = requests.Session()
    session.verify = config.verify
    if config.ca_bundle:
        session.trust_env = False
    return session


def token_error(result: dict[str, Any], tenant_id: str) -> TokenError:
    error = str(result.get("error", "unknown_error"))
    codes = result.get("error_codes") or []
    aadsts = int(codes[0]) if codes else None
    hint = AADSTS_HINTS.get(aadsts or 0, "")
    first_line = str(result.get("error_description", "")).splitlines()[0:1]
    detail = first_line[0] if first_line else error
    text = f"No token for tenant {tenant_id}: {error}"
    if aadsts:
        text += f" (AADSTS{aadsts})"
    text += f". {hint}" if hint else f": {detail}"
    return TokenError(text, error=error, aadsts=aadsts)


class TokenProvider:
    """Client-credentials tokens of one tenant; MSAL caches them until they expire."""

    def __init__(self, config: GraphSettings, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        try:
            credential = config.credential()
        except (OSError, ValueError) as exc:
            raise TokenError(
                f"The app certificate {config.certificate_path} cannot be read: {exc}",
                error="invalid_certificate",
            ) from exc
        self.session = msal_http_client(config)
        try:
            self.app = msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=credential,
                authority=f"{config.authority_base}/{tenant_id}",
                instance_discovery=False,
                http_client=self.session,
                timeout=30,
            )
        except ValueError as exc:  # discovery answered 4xx: unknown tenant
            self.session.close()
            raise TokenError(
                f"Tenant {tenant_id} is unknown to {config.authority_base} ({exc}).",
                error="invalid_tenant",
            ) from exc
        except Exception as exc:  # requests' connection errors
            self.session.close()
            raise TokenError(
                f"Cannot reach {config.authority_base} for tenant {tenant_id}: {exc}",
                error="unreachable",
            ) from exc

    def token(self) -> str:
        with self._lock:
            try:
                result = self.app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
            except Exception as exc:
                raise TokenError(
                    f"Cannot reach the token endpoint for tenant {self.tenant_id}: {exc}",
                    error="unreachable",
                ) from exc
        if not result or "access_token" not in result:
            raise token_error(result or {}, self.tenant_id)
        return str(result["access_token"])

    def renew(self) -> None:
        """Forget the cached token (after Graph said it expired)."""
        with self._lock:
            self.app.remove_tokens_for_client()

    def close(self) -> None:
        self.session.close()


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a (fractional) number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return str(error or ""), str(body)[:200]


class GraphClient:
    """Graph for one tenant. Thread-safe: share one client between worker threads."""

    def __init__(
        self,
        tenant_id: str,
        config: GraphSettings | None = None,
        *,
        tokens: TokenProvider | None = None,
        sleep: Callable[[float], None] = time.sleep,
        mailbox_concurrency: int = MAILBOX_CONCURRENCY,
    ) -> None:
        self.config = config or GraphSettings.from_django()
        self.tenant_id = tenant_id
        self.tokens = tokens or TokenProvider(self.config, tenant_id)
        self.http = httpx.Client(
            verify=self.config.ssl_context(),
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.base = self.config.graph_base.rstrip("/")
        self._host = urlsplit(self.base).netloc.casefold()
        self._sleep = sleep
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self._limit = mailbox_concurrency
        self.stats = Stats()

    def close(self) -> None:
        self.http.close()
        self.tokens.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one request ------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            if urlsplit(path_or_url).netloc.casefold() != self._host:
                raise GraphError(f"Refusing a link to a foreign host: {path_or_url[:100]}")
            return path_or_url
        path = path_or_url if path_or_url.startswith("/") else f"/{path_or_url}"
        if not path.startswith(("/v1.0/", "/beta/")):
            path = f"/v1.0{path}"
        return f"{self.base}{path}"

    @contextmanager
    def _slot(self, mailbox: str | None) -> Iterator[None]:
        if mailbox is None:
            yield
            return
        with self._slots_lock:
            slot = self._slots.setdefault(mailbox, threading.BoundedSemaphore(self._limit))
        with slot:
            yield

    def _backoff(self, attempt: int) -> float:
        return float(min(60.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        mailbox: str | None = None,
    ) -> httpx.Response:
        url = self.url(path_or_url)
        renewed = False
        attempt = 0
        while True:
            token = self.tokens.token()
            sent = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                with self._slot(mailbox):
                    self.stats.add(requests=1)
                    response = self.http.request(
                        method, url, params=params, headers=sent, json=json
                    )
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise GraphError(f"Graph unreachable after {attempt + 1} tries: {exc}") from exc
                pause = self._backoff(attempt)
                log.info("graph %s %s: %s; retry in %.1f s", method, url, exc, pause)
                self.stats.add(retries=1)
                self._sleep(pause)
                attempt += 1
                continue
            status = response.status_code
            if status == 401 and not renewed:
                renewed = True
                self.tokens.renew()
                continue
            if status in RETRY_STATUSES:
                if status == 429:
                    self.stats.add(throttled=1)
                if attempt >= self.config.max_retries:
                    code, message = _error_of(response)
                    raise GraphError(
                        f"Graph kept answering {status} {code} after {attempt + 1} tries: "
                        f"{message}",
                        status=status,
                        code=code,
                    )
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is None:
                    wait = self._backoff(attempt)
                self.stats.add(retries=1)
                self._sleep(min(wait, MAX_WAIT_SECONDS))
                attempt += 1
                continue
            if status == 410:
                code, message = _error_of(response)
                raise ResyncRequired(
                    f"Graph: {code or 'Gone'}: {message}",
                    code=code,
                    location=response.headers.get("Location", ""),
                )
            if status >= 400:
                code, message = _error_of(response)
                raise GraphError(
                    f"Graph {method} {urlsplit(url).path}: {status} {code}: {message}",
                    status=status,
                    code=code,
                )
            return response

    def get(self, path_or_url: str, **kwargs: Any) -> dict[str, Any]:
        data = self.request("GET", path_or_url, **kwargs).json()
        return data if isinstance(data, dict) else {}

    # --- paging and delta -------------------------------------------------------------

    def pages(
        self,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        mailbox: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every page, following ``@odata.nextLink`` (the same headers on each)."""
        page = self.get(path_or_url, params=params, headers=headers, mailbox=mailbox)
        while True:
            yield page
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get(str(link), headers=headers, mailbox=mailbox)

    def items(self, path_or_url: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.pages(path_or_url, **kwargs):
            yield from page.get("value", [])

    def delta(
        self,
        path_or_link: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        mailbox: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All changes of one delta round and the deltaLink to continue from.

        Raises :class:`ResyncRequired` on 410: the caller starts again from its
        ``location`` and must treat the result as a full read."""
        items: list[dict[str, Any]] = []
        delta_link = ""
        for page in self.pages(path_or_link, params=params, headers=headers, mailbox=mailbox):
            items.extend(page.get("value", []))
            delta_link = str(page.get("@odata.deltaLink", "") or delta_link)
        if not delta_link:
            raise GraphError("The delta query ended without a deltaLink.")
        return items, delta_link
