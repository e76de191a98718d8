"""Connecting and signing in to an IMAP server: TLS or STARTTLS, LOGIN/PLAIN or XOAUTH2."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError


class ImapError(Exception):
    """A problem talking to the IMAP server, with a message for the process log."""


class ImapLoginError(ImapError):
    """The server refused the credentials (no retry helps)."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str = "tls"  # "tls", "starttls" or "none"
    username: str = ""
    password: str = field(default="", repr=False)
    oauth_token: str = field(default="", repr=False)  # XOAUTH2 when set
    # Multiple mailboxes: sign in as the master (admin) user ``username`` and open this
    # mailbox (SASL PLAIN authorization identity, RFC 4616; Dovecot master users, Cyrus,
    # Zimbra admin).
    authorize_as: str = ""
    tls_verify: bool = True
    ca_pem: str = ""
    timeout: float = 60.0


def ssl_context(verify: bool, ca_pem: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_pem.strip():
        context.load_verify_locations(cadata=ca_pem)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(settings: ImapSettings) -> IMAPClient:
    """A signed-in client. ImapLoginError for refused credentials, ImapError otherwise."""
    context = ssl_context(settings.tls_verify, settings.ca_pem)
    where = f"{settings.host}:{settings.port}"
    try:
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=settings.timeout,
        )
    except (OSError, IMAPClientError) as exc:
        raise ImapError(f"Cannot connect to the IMAP server {where}: {exc}") from exc
    try:
        if settings.security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(f"The IMAP server {where} does not offer STARTTLS.")
            client.starttls(context)
        _login(client, settings)
    except LoginError as exc:
        _close(client)
        who = settings.username + (f" for {settings.authorize_as}" if settings.authorize_as else "")
        raise ImapLoginError(
            f"Sign-in to the IMAP server {where} as {who} failed: "
            f"{_text(exc)}. Check the user name and password of the secret."
        ) from exc
    except ImapError:
        _close(client)
        raise
    except (OSError, ssl.SSLError, IMAPClientError) as exc:
        _close(client)
        raise ImapError(f"The IMAP server {where} failed during sign-in: {exc}") from exc
    return client


def _login(client: IMAPClient, settings: ImapSettings) -> None:
    if settings.oauth_token:
        client.oauth2_login(settings.username, settings.oauth_token)
    elif settings.authorize_as:
        client.plain_login(
            settings.username, settings.password, authorization_identity=settings.authorize_as
        )
    elif client.has_capability("AUTH=PLAIN"):
        client.plain_login(settings.username, settings.password)
    else:
        client.login(settings.username, settings.password)


def _text(exc: Exception) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        with contextlib.suppress(OSError, IMAPClientError):
            client.shutdown()
