"""What the SMTP server (:mod:`.protocol`) keeps per session and transaction, what it is
configured with, and what it expects of the handler and the authenticator."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

DATA_SIZE_DEFAULT = 2**25


@dataclass
class Session:
    peer: Any = None
    host_name: str | None = None
    extended_smtp: bool = False
    tls: bool = False
    authenticated: bool = False
    auth_user: str | None = None


@dataclass
class Envelope:
    mail_from: str | None = None
    mail_options: list[str] = field(default_factory=list)
    rcpt_tos: list[str] = field(default_factory=list)
    smtp_utf8: bool = False


class Handler(Protocol):
    def rcpt(self, session: Session, envelope: Envelope, address: str) -> str:
        """The reply to RCPT; a 2xx reply means the handler added the recipient."""

    def data(
        self, session: Session, envelope: Envelope, body: bytes, reply: Callable[[str], None]
    ) -> None:
        """Take the message; call ``reply`` (on the event loop) with the final reply."""


# (mechanism, login, password) -> the authenticated user name, or None. Runs in a
# worker thread: password hashing must not stall the event loop.
Authenticator = Callable[[str, bytes, bytes], str | None]


@dataclass(frozen=True)
class ServerConfig:
    hostname: str
    ident: str = "Mailvault journaling"
    data_size_limit: int | None = DATA_SIZE_DEFAULT
    enable_SMTPUTF8: bool = False
    tls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    authenticator: Authenticator | None = None
    auth_require_tls: bool = True
    auth_required: bool = False
    timeout: float = 300.0

    def ehlo(self, tls: bool) -> bytes:
        lines = [self.hostname]
        if self.data_size_limit:
            lines.append(f"SIZE {self.data_size_limit}")
        lines += ["8BITMIME", "PIPELINING"]
        if self.enable_SMTPUTF8:
            lines.append("SMTPUTF8")
        if self.tls_context is not None and not tls:
            lines.append("STARTTLS")
        if self.authenticator is not None and (tls or not self.auth_require_tls):
            lines.append("AUTH LOGIN PLAIN")
        lines.append("HELP")
        return "".join(
            f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines)
        ).encode()
