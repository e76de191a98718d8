"""Microsoft Graph over httpx, tokens from MSAL: the one place for every Graph rule.

Paging (``@odata.nextLink`` followed verbatim, only to the Graph host), delta queries
(the last page's ``@odata.deltaLink``; ``410 Gone`` raises :class:`ResyncRequired` with
the fresh query from ``Location``), ``Retry-After`` (seconds, fractional too, or an HTTP
date) on 429 and 503, exponential backoff with jitter when it is missing and after
dropped connections, at most four concurrent requests per mailbox, and a renewed token
after a 401. ``$batch`` (:meth:`GraphClient.batch`) sends up to 20 requests as one and
retries the throttled ones alone; a batch for a mailbox holds all four of its slots, since
Graph runs up to four of its sub-requests against that mailbox at once. The same code
talks to the real cloud or to the emulator: only the two base URLs in settings differ.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import ssl
import threading
import time
from collections import deque
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
# Renewals of the token per request: a request that retries for a long time may see its
# token expire more than once; a fresh token refused again and again is a real error.
MAX_RENEWALS = 3
MAX_BATCH = 20  # sub-requests per $batch (Graph's limit)
# Graph's other limits (m365-protocol.md §4), kept a little below so that a busy run
# waits on its own instead of collecting 429s: requests per second per app, and
# requests per mailbox in a sliding 10 minutes. Sub-requests of a $batch count one by one.
# Graph counts on arrival: requests sent earlier but delayed (up to 32 mailboxes x 21
# in flight) can land in the same second as those sent within it, hence the margin.
APP_RATE_PER_SECOND = 1_250
MAILBOX_WINDOW_LIMIT = 9_600
MAILBOX_WINDOW_SECONDS = 600.0

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
    requests: int = 0  # HTTP requests (a $batch is one)
    batched: int = 0  # sub-requests sent inside $batch requests
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


class _Window:
    """Requests sent in a sliding window (counted in buckets, so memory stays small);
    ``take(n)`` waits until n more fit under the limit."""

    def __init__(self, limit: int, seconds: float, width: float) -> None:
        self.limit = limit
        self._width = width
        # One bucket more than the window spans: the history kept is never shorter.
        self._span = round(seconds / width) + 1
        self._counts: deque[list[int]] = deque()
        self._total = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                bucket = int(now / self._width)
                while self._counts and self._counts[0][0] <= bucket - self._span:
                    self._total -= self._counts.popleft()[1]
                if self._total + n <= self.limit or not self._counts:
                    if self._counts and self._counts[-1][0] == bucket:
                        self._counts[-1][1] += n
                    else:
                        self._counts.append([bucket, n])
                    self._total += n
                    return
                wait = (self._counts[0][0] + self._span) * self._width - now
            time.sleep(max(wait, 0.001))


class _Slots:
    """One mailbox's concurrency slots; a batch takes several at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._cond = threading.Condition()
        self.window = _Window(MAILBOX_WINDOW_LIMIT, MAILBOX_WINDOW_SECONDS, 1.0)

    def acquire(self, n: int) -> None:
        with self._cond:
            while self._free < n:
                self._cond.wait()
            self._free -= n

    def release(self, n: int) -> None:
        with self._cond:
            self._free += n
            self._cond.notify_all()


@dataclass
class SubResponse:
    """One answer of a ``$batch``: ``body`` is the JSON object, or bytes (``$value``)."""

    status: int
    body: dict[str, Any] | bytes | None
    headers: dict[str, str]

    def error(self) -> tuple[str, str]:
        """Graph's error code and message, when the body carries one."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return str(error.get("code", "")), str(error.get("message", ""))
        return "", ""


def _sub_response(entry: dict[str, Any]) -> SubResponse:
    headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
    body = entry.get("body")
    if isinstance(body, str) and "json" not in headers.get("content-type", "json"):
        body = base64.b64decode(body)  # a non-JSON body comes base64-encoded
    elif body is not None and not isinstance(body, dict):
        body = None
    return SubResponse(int(entry.get("status", 0)), body, headers)


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
        self._slots: dict[str, _Slots] = {}
        self._slots_lock = threading.Lock()
        self._limit = mailbox_concurrency
        self._app_rate = _Window(APP_RATE_PER_SECOND, 1.0, 0.05)
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
    def _slot(self, mailbox: str | None, weight: int = 1, batched: int = 0) -> Iterator[None]:
        """Wait for the app's rate and the mailbox's 10-minute budget (a $batch counts
        once for the app, and so does each of its ``batched`` sub-requests; only these
        count for the mailbox), then hold ``weight`` of the mailbox's slots."""
        self._app_rate.take(1 + batched)
        if mailbox is None:
            yield
            return
        with self._slots_lock:
            slots = self._slots.get(mailbox)
            if slots is None:
                slots = self._slots[mailbox] = _Slots(self._limit)
        slots.window.take(batched or 1)
        weight = min(weight, slots.limit)
        slots.acquire(weight)
        try:
            yield
        finally:
            slots.release(weight)

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
        weight: int = 1,
        batched: int = 0,
    ) -> httpx.Response:
        """One request, retried as Graph asks; ``weight``: the mailbox slots it holds,
        ``batched``: the sub-requests inside (a $batch)."""
        url = self.url(path_or_url)
        renewals = 0
        attempt = 0
        while True:
            token = self.tokens.token()
            sent = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                with self._slot(mailbox, weight, batched):
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
            if status == 401 and renewals < MAX_RENEWALS:
                renewals += 1
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

    def batch(
        self, requests: list[dict[str, Any]], *, mailbox: str | None = None
    ) -> list[SubResponse]:
        """Up to 20 requests (``method``, relative ``url``, optional ``headers``) as one
        ``$batch``; the answers in the same order. Sub-requests answered 429/5xx are sent
        again, alone, after the longest ``Retry-After`` among them (backoff without one),
        at most ``max_retries`` times; a 401 renews the token (at most MAX_RENEWALS
        times). Other errors come back as they are: the caller decides per item."""
        if not 0 < len(requests) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} requests, not {len(requests)}")
        results: dict[str, SubResponse] = {}
        pending = {str(n): r for n, r in enumerate(requests)}
        renewals = 0
        attempt = 0
        while pending:
            body = {"requests": [{"id": k, **r} for k, r in pending.items()]}
            answer = self.request(
                "POST",
                "/$batch",
                json=body,
                mailbox=mailbox,
                weight=self._limit,  # Graph runs up to four of them at once
                batched=len(pending),
            )
            entries = answer.json().get("responses") or []
            self.stats.add(batched=len(pending))
            retry: dict[str, dict[str, Any]] = {}
            waits: list[float] = []
            expired = False
            for entry in entries:
                key = str(entry.get("id", ""))
                if key not in pending:
                    continue
                sub = _sub_response(entry)
                if sub.status == 401 and renewals < MAX_RENEWALS:
                    expired = True
                    retry[key] = pending[key]
                elif sub.status in RETRY_STATUSES and attempt < self.config.max_retries:
                    if sub.status == 429:
                        self.stats.add(throttled=1)
                    retry[key] = pending[key]
                    wait = retry_after_seconds(sub.headers.get("retry-after"))
                    waits.append(self._backoff(attempt) if wait is None else wait)
                else:
                    results[key] = sub
            for key in pending.keys() - results.keys() - retry.keys():
                retry[key] = pending[key]  # no answer for it: ask again
            pending = retry
            if not pending:
                break
            if expired:
                renewals += 1
                self.tokens.renew()
            if waits or not expired:
                if attempt >= self.config.max_retries:
                    raise GraphError(f"$batch: {len(pending)} requests never answered.")
                self.stats.add(retries=len(pending))
                self._sleep(min(max(waits, default=self._backoff(attempt)), MAX_WAIT_SECONDS))
                attempt += 1
        return [results[str(n)] for n in range(len(requests))]

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
