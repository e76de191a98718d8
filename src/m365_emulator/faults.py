"""Throttling and fault switches (m365-protocol.md §4), set per test over the control API
or from the admin page.

Realistic limits are on by default: 4 concurrent requests and 10,000 requests per 600 s
per (app, mailbox), 2,000 requests per second per app. Fault knobs are off by default and
each one-shot knob counts down (``throttle_next: 2`` throttles the next two requests).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    mailbox_concurrency: int = 4  # 0 = unlimited
    mailbox_limit: int = 10_000  # requests per mailbox_window seconds; 0 = unlimited
    mailbox_window: float = 600.0
    app_rate_per_second: int = 2_000  # 0 = unlimited
    throttle_next: int = 0  # next N Graph requests: 429 TooManyRequests
    retry_after: str = "2.128"  # Retry-After of injected 429/503 ("" = header left out)
    unavailable_next: int = 0  # next N Graph requests: 503
    drop_next: int = 0  # next N Graph requests: the connection drops mid-response
    slow_ms: int = 0  # every Graph request waits this long first
    path_filter: str = ""  # one-shot knobs hit only paths containing this text
    delta_reset: bool = False  # every delta token answers 410
    delta_token_ttl: float = 7 * 24 * 3600.0
    token_lifetime: int = 3599  # seconds of new access tokens
    token_throttled: bool = False  # token endpoint: 429 AADSTS90055
    secret_expired: bool = False  # client secret: invalid_client AADSTS7000222
    ids_change_on_move: bool = False  # immutable ids change on move too
    no_mailbox: list[str] = field(default_factory=list)  # user ids answered as mailbox-less
    roles: list[str] | None = None  # app roles put into new app tokens (None = all)

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise KeyError(name)
            current = getattr(self, name)
            if isinstance(current, bool):
                value = (
                    value if isinstance(value, bool) else str(value).lower() in ("1", "true", "on")
                )
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, str):
                value = str(value)
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    status: int
    code: str
    message: str
    retry_after: str | None = None
    drop: bool = False


class Throttle:
    """The limits and one-shot faults; ``enter``/``leave`` bracket every Graph request.

    ``stats`` counts requests and 429s by cause, and keeps the highest number of requests
    seen in flight for one mailbox (``max_mailbox_concurrency``) and in one mailbox's
    sliding window (``max_mailbox_window``): what a benchmark checks against the limits."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.lock = threading.Lock()
        self._inflight: collections.Counter[tuple[str, str]] = collections.Counter()
        self._window: dict[tuple[str, str], collections.deque[float]] = {}
        self._app_second: dict[str, collections.deque[float]] = {}
        self.stats: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self._window.clear()
            self._app_second.clear()
            self.stats.clear()

    def _one_shot(self, path: str) -> Verdict | None:
        f = self.faults
        if f.path_filter and f.path_filter not in path:
            return None
        retry = f.retry_after or None
        if f.throttle_next > 0:
            f.throttle_next -= 1
            return Verdict(429, "TooManyRequests", "Please retry again later.", retry)
        if f.unavailable_next > 0:
            f.unavailable_next -= 1
            return Verdict(503, "ServiceNotAvailable", "Service unavailable.", retry)
        if f.drop_next > 0:
            f.drop_next -= 1
            return Verdict(0, "", "", drop=True)
        return None

    def enter(self, app: str, mailbox: str | None, path: str) -> Verdict | None:
        """Admit a request (then ``leave`` must follow) or say why not."""
        now = time.monotonic()
        with self.lock:
            self.stats["requests"] += 1
            verdict = self._one_shot(path)
            if verdict is not None:
                self.stats[f"injected_{verdict.status}"] += 1
                return verdict
            f = self.faults
            if f.app_rate_per_second:
                second = self._app_second.setdefault(app, collections.deque())
                while second and second[0] <= now - 1.0:
                    second.popleft()
                if len(second) >= f.app_rate_per_second:
                    self.stats["throttled_app"] += 1
                    wait = max(0.001, second[0] + 1.0 - now)
                    return Verdict(
                        429, "TooManyRequests", "Please retry again later.", f"{wait:.3f}"
                    )
                second.append(now)
            if mailbox is None:
                return None
            key = (app, mailbox)
            if f.mailbox_concurrency and self._inflight[key] >= f.mailbox_concurrency:
                self.stats["throttled_concurrency"] += 1
                return Verdict(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    "1",
                )
            if f.mailbox_limit:
                window = self._window.setdefault(key, collections.deque())
                while window and window[0] <= now - f.mailbox_window:
                    window.popleft()
                if len(window) >= f.mailbox_limit:
                    self.stats["throttled_mailbox"] += 1
                    wait = max(0.001, window[0] + f.mailbox_window - now)
                    return Verdict(
                        429, "ApplicationThrottled", "Application is over its limit.", f"{wait:.3f}"
                    )
                window.append(now)
                if len(window) > self.stats["max_mailbox_window"]:
                    self.stats["max_mailbox_window"] = len(window)
            self._inflight[key] += 1
            if self._inflight[key] > self.stats["max_mailbox_concurrency"]:
                self.stats["max_mailbox_concurrency"] = self._inflight[key]
            return None

    def leave(self, app: str, mailbox: str | None) -> None:
        if mailbox is None:
            return
        with self.lock:
            key = (app, mailbox)
            self._inflight[key] -= 1
            if self._inflight[key] <= 0:
                del self._inflight[key]
