"""The SMTP listener that receives journal reports (the server is :mod:`.protocol`).

ESMTP with STARTTLS, SIZE, 8BITMIME, SMTPUTF8 and optional AUTH; recipients are journal
endpoint addresses (``<local part>[+<original recipient>]@<journal domain>``). A message
is acknowledged only after the spool's group commit made it durable; ingestion happens
later, in :mod:`.consumer`. Under overload (spool above its limit) the listener answers
``451`` so that senders retry later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import check_password

from mailvault.sources.smtp.counters import EndpointCounters
from mailvault.sources.smtp.endpoints import EndpointDirectory, EndpointInfo
from mailvault.sources.smtp.session import Envelope, Session
from mailvault.sources.smtp.spool import Spool

log = logging.getLogger("mailvault.smtp")


Done = Callable[[BaseException | None], None]


@dataclass
class _Commit:
    records: list[tuple[dict[str, object], bytes]]
    loop: asyncio.AbstractEventLoop
    done: Done  # called on ``loop`` with None once durable, else the error


class GroupCommitter:
    """One thread appending everything that waits to the spool with a single fsync."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._queue: queue.Queue[_Commit | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="spool-commit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self.spool.roll_if_due(force=True)

    def submit(self, records: list[tuple[dict[str, object], bytes]], done: Done) -> None:
        """Queue ``records``; ``done`` runs on the calling event loop after the fsync."""
        self._queue.put(_Commit(records, asyncio.get_running_loop(), done))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=0.25)
            except queue.Empty:
                self.spool.roll_if_due()
                continue
            batch: list[_Commit] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if batch:
                try:
                    self.spool.append([r for item in batch for r in item.records])
                    error: BaseException | None = None
                except BaseException as exc:  # a failed fsync means: not accepted
                    log.exception("spool write failed")
                    error = exc
                # One wake-up per event loop for the whole batch, not one per message.
                by_loop: dict[asyncio.AbstractEventLoop, list[Done]] = {}
                for item in batch:
                    by_loop.setdefault(item.loop, []).append(item.done)
                for loop, callbacks in by_loop.items():
                    # RuntimeError: that loop is closed, nobody waits any more.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_call_all, callbacks, error)
            self.spool.roll_if_due()


def _call_all(callbacks: list[Done], error: BaseException | None) -> None:
    for callback in callbacks:
        try:
            callback(error)
        except Exception:
            log.exception("spool commit callback failed")


def split_recipient(address: str, domain: str) -> tuple[str, str] | None:
    """(endpoint local part, original recipient or "") of a journal address, else None.
    ``j-abc+bob=contoso.com@journal.example`` names original recipient bob@contoso.com
    (the sub-address a Postfix ``recipient_bcc_maps`` copy can carry)."""
    local, sep, addr_domain = address.rpartition("@")
    if not sep or addr_domain.casefold() != domain.casefold():
        return None
    base, _, extension = local.partition("+")
    original = ""
    if extension and "=" in extension:
        user, _, host = extension.rpartition("=")
        original = f"{user}@{host}".casefold()
    return base, original


class JournalHandler:
    """Checks recipients and spools accepted messages (the server's :class:`Handler`)."""

    def __init__(
        self,
        directory: EndpointDirectory,
        committer: GroupCommitter,
        counters: EndpointCounters | None = None,
    ) -> None:
        self.directory = directory
        self.committer = committer
        # Accepted/rejected/deferred per endpoint, persisted by counters.py (not here).
        self.counters = counters if counters is not None else EndpointCounters()
        self.domain = settings.MAILVAULT_JOURNAL_DOMAIN
        self.max_recipients = settings.MAILVAULT_SMTP_MAX_RECIPIENTS
        self.spool_limit = settings.MAILVAULT_SMTP_SPOOL_LIMIT_BYTES

    def _overloaded(self) -> bool:
        return self.committer.spool.pending_bytes(max_age=0.5) > self.spool_limit

    def rcpt(self, session: Session, envelope: Envelope, address: str) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        parts = split_recipient(address, self.domain)
        endpoint = self.directory.get(parts[0]) if parts else None
        if endpoint is None or not endpoint.enabled:
            if endpoint is not None:
                self.counters.rejected(endpoint.id)
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such journal endpoint"
        peer_host = session.peer[0] if isinstance(session.peer, tuple) else ""
        if not endpoint.allows_peer(str(peer_host)):
            self.counters.rejected(endpoint.id)
            return "550 5.7.1 Your address may not deliver to this journal endpoint"
        if endpoint.auth_username and session.auth_user != endpoint.auth_username:
            self.counters.rejected(endpoint.id)
            return "530 5.7.0 Authentication required"
        if self._overloaded():
            self.counters.deferred(endpoint.id)
            return "451 4.3.1 Insufficient system storage, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def data(
        self, session: Session, envelope: Envelope, raw: bytes, reply: Callable[[str], None]
    ) -> None:
        by_endpoint: dict[int, tuple[EndpointInfo, list[str]]] = {}
        for address in envelope.rcpt_tos:
            parts = split_recipient(address, self.domain)
            endpoint = self.directory.get(parts[0]) if parts else None
            if endpoint is None or parts is None:
                continue
            entry = by_endpoint.setdefault(endpoint.id, (endpoint, []))
            if parts[1]:
                entry[1].append(parts[1])
        if not by_endpoint:
            reply("554 5.5.1 No valid recipients")
            return
        received = time.time()
        peer = session.peer[0] if isinstance(session.peer, tuple) else ""
        records: list[tuple[dict[str, object], bytes]] = [
            (
                {
                    "endpoint": endpoint.id,
                    "tenant": endpoint.tenant_id,
                    "mail_from": envelope.mail_from or "",
                    "original_recipients": originals,
                    "received": received,
                    "peer": str(peer),
                },
                raw,
            )
            for endpoint, originals in by_endpoint.values()
        ]

        def done(error: BaseException | None) -> None:
            for endpoint, _ in by_endpoint.values():
                if error is None:
                    self.counters.accepted(endpoint.id, received)
                else:
                    self.counters.deferred(endpoint.id)
            if error is None:
                reply("250 2.0.0 OK: archived")
            else:
                reply("451 4.3.0 Could not store the message, try again later")

        self.committer.submit(records, done)


class Authenticator:
    """SMTP AUTH against the endpoints' credentials: the user name, or None. Called in a
    worker thread (password hashing takes a while)."""

    def __init__(self, directory: EndpointDirectory) -> None:
        self.directory = directory

    def __call__(self, mechanism: str, login: bytes, password: bytes) -> str | None:
        username = login.decode("utf-8", "replace")
        secret = password.decode("utf-8", "replace")
        for endpoint in self.directory.by_auth_username(username):
            if endpoint.auth_password_hash and check_password(secret, endpoint.auth_password_hash):
                return username
        return None
