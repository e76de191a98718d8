"""The SMTP listener that receives journal reports (aiosmtpd).

ESMTP with STARTTLS, SIZE, 8BITMIME, SMTPUTF8 and optional AUTH; recipients are journal
endpoint addresses (``<local part>[+<original recipient>]@<journal domain>``). A message
is acknowledged only after the spool's group commit made it durable; ingestion happens
later, in :mod:`.consumer`. Under overload (spool above its limit) the listener answers
``451`` so that senders retry later.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from django.conf import settings
from django.contrib.auth.hashers import check_password

from mailvault.sources.smtp.counters import EndpointCounters
from mailvault.sources.smtp.endpoints import EndpointDirectory, EndpointInfo
from mailvault.sources.smtp.spool import Spool

log = logging.getLogger("mailvault.smtp")


@dataclass
class _Commit:
    records: list[tuple[dict[str, object], bytes]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


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

    async def commit(self, records: list[tuple[dict[str, object], bytes]]) -> None:
        loop = asyncio.get_running_loop()
        item = _Commit(records, loop, loop.create_future())
        self._queue.put(item)
        await item.future

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
                for item in batch:
                    item.loop.call_soon_threadsafe(_resolve, item.future, error)
            self.spool.roll_if_due()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


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
    """aiosmtpd handler: checks recipients, spools accepted messages."""

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

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
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
        if endpoint.auth_username and getattr(session, "mailvault_user", None) != (
            endpoint.auth_username
        ):
            self.counters.rejected(endpoint.id)
            return "530 5.7.0 Authentication required"
        if self._overloaded():
            self.counters.deferred(endpoint.id)
            return "451 4.3.1 Insufficient system storage, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
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
            return "554 5.5.1 No valid recipients"
        received = time.time()
        peer = session.peer[0] if isinstance(session.peer, tuple) else ""
        records = [
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
        try:
            await self.committer.commit(records)
        except Exception:
            for endpoint, _ in by_endpoint.values():
                self.counters.deferred(endpoint.id)
            return "451 4.3.0 Could not store the message, try again later"
        for endpoint, _ in by_endpoint.values():
            self.counters.accepted(endpoint.id, received)
        return "250 2.0.0 OK: archived"


class Authenticator:
    """SMTP AUTH against the endpoints' credentials; the name is kept on the session."""

    def __init__(self, directory: EndpointDirectory) -> None:
        self.directory = directory

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        for endpoint in self.directory.by_auth_username(username):
            if endpoint.auth_password_hash and check_password(
                password, endpoint.auth_password_hash
            ):
                session.mailvault_user = username  # type: ignore[attr-defined]
                return AuthResult(success=True, auth_data=username)
        return AuthResult(success=False, handled=False)
