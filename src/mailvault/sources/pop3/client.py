"""POP3 with poplib: TLS (POP3S) or STLS, USER/PASS, messages listed by UIDL.

A POP3 session is a transaction: DELE only takes effect at QUIT, so the deletions of a
run are sent at the end of the same session that fetched (or of a fresh one) and a
dropped connection deletes nothing.
"""

from __future__ import annotations

import contextlib
import email.utils
import poplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

from mailvault.sources.imap.client import ImapSettings, ssl_context


class Pop3Error(Exception):
    """A problem talking to the POP3 server, with a message for the process log."""


class Pop3LoginError(Pop3Error):
    pass


@dataclass(frozen=True)
class Pop3Message:
    uidl: str
    raw: bytes = field(repr=False)


def _text(exc: poplib.error_proto) -> str:
    arg = exc.args[0] if exc.args else str(exc)
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _closed(exc: poplib.error_proto) -> bool:
    """poplib's own error for a connection the server closed (a server's ``-ERR``
    answer comes as bytes)."""
    return bool(exc.args) and isinstance(exc.args[0], str)


def _date_of(headers: bytes) -> date | None:
    for line in headers.split(b"\r\n"):
        if line[:5].lower() == b"date:":
            try:
                return email.utils.parsedate_to_datetime(line[5:].decode("latin-1").strip()).date()
            except (TypeError, ValueError):
                return None
    return None


class Pop3Session:
    """One signed-in POP3 session (same settings type as IMAP: host, port, security)."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        where = f"{settings.host}:{settings.port}"
        context = ssl_context(settings.tls_verify, settings.ca_pem)
        try:
            if settings.security == "tls":
                self.conn: poplib.POP3 = poplib.POP3_SSL(
                    settings.host, settings.port, context=context, timeout=settings.timeout
                )
            else:
                self.conn = poplib.POP3(settings.host, settings.port, timeout=settings.timeout)
                if settings.security == "starttls":
                    self.conn.stls(context)
        except (OSError, ssl.SSLError, poplib.error_proto) as exc:
            raise Pop3Error(f"Cannot connect to the POP3 server {where}: {exc}") from exc
        try:
            self.conn.user(settings.username)
            self.conn.pass_(settings.password)
        except poplib.error_proto as exc:
            self.abort()
            if _closed(exc):
                raise Pop3Error(
                    f"The POP3 server {where} closed the connection during sign-in."
                ) from exc
            raise Pop3LoginError(
                f"Sign-in to the POP3 server {where} as {settings.username} failed: "
                f"{_text(exc)}. Check the user name and password of the secret."
            ) from exc

    def uidls(self) -> list[tuple[int, str]]:
        try:
            _, lines, _ = self.conn.uidl()
        except poplib.error_proto as exc:
            raise Pop3Error(f"Listing the messages (UIDL) failed: {_text(exc)}") from exc
        result = []
        for line in lines:
            number, uidl = line.decode("ascii", "replace").split(" ", 1)
            result.append((int(number), uidl.strip()))
        return result

    def messages(
        self,
        seen: set[str],
        *,
        newer_than: date | None = None,
        older_than: date | None = None,
        on_problem: Callable[[str], None] = lambda text: None,
    ) -> Iterator[Pop3Message]:
        """The messages whose UIDL is not in ``seen`` (and within the date range)."""
        for number, uidl in self.uidls():
            if uidl in seen:
                continue
            try:
                if newer_than or older_than:
                    _, head, _ = self.conn.top(number, 0)
                    sent = _date_of(b"\r\n".join(head))
                    if sent is not None and (
                        (newer_than and sent < newer_than) or (older_than and sent >= older_than)
                    ):
                        continue
                _, lines, _ = self.conn.retr(number)
            except poplib.error_proto as exc:
                if _closed(exc):  # nothing more comes over this connection
                    raise Pop3Error(
                        f"The connection closed while fetching POP3 message {uidl}."
                    ) from exc
                on_problem(f"POP3 message {uidl} could not be fetched: {_text(exc)}")
                continue
            yield Pop3Message(uidl=uidl, raw=b"\r\n".join(lines) + b"\r\n")

    def delete(self, numbers: list[int]) -> None:
        """Marks the messages; they are deleted only at ``quit``."""
        try:
            for number in numbers:
                self.conn.dele(number)
        except poplib.error_proto as exc:
            raise Pop3Error(f"DELE failed: {_text(exc)}") from exc

    def quit(self) -> None:
        """Ends the session; deletions marked with ``delete`` take effect now."""
        try:
            self.conn.quit()
        except poplib.error_proto as exc:
            raise Pop3Error(f"QUIT failed: {_text(exc)}") from exc

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
