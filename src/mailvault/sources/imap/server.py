"""ImapSettings from a configuration with server fields and a Secret.

Archiving profiles and IMAP folder synchronizations store the same server settings
(host, port, security, authentication, TLS verification, a trusted CA, a Secret); this is
the one place that turns them into connector settings.
"""

from __future__ import annotations

from typing import Protocol

from mailvault.accounts.secrets import Secret, reveal
from mailvault.sources.imap.client import ImapSettings
from mailvault.sources.profiles.oauth import OAuthError, client_credentials_token

XOAUTH2 = "xoauth2"
IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}


class ServerConfig(Protocol):
    """What a configuration model with IMAP server fields offers (read-only)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def security(self) -> str: ...
    @property
    def auth_method(self) -> str: ...
    @property
    def tls_verify(self) -> bool: ...
    @property
    def ca_certificate(self) -> str: ...
    @property
    def secret(self) -> Secret | None: ...


class MissingSecret(ValueError):
    """The configuration has no Secret."""


def oauth_token(config: ServerConfig) -> str:
    """An XOAUTH2 access token by the client credentials grant ("" for passwords);
    OAuthError when the identity provider refuses."""
    if config.auth_method != XOAUTH2 or config.secret is None:
        return ""
    return client_credentials_token(
        reveal(config.secret), ca_pem=config.ca_certificate, verify=config.tls_verify
    )


def server_settings(
    config: ServerConfig,
    *,
    address: str,
    default_port: int | None = None,
    oauth: str = "",
    authorize_as: str = "",
) -> ImapSettings:
    """Host, security and the revealed credentials. ``address`` signs in with XOAUTH2
    (the token's user); otherwise the Secret's user name is used."""
    if config.secret is None:
        raise MissingSecret("no secret is set")
    value = reveal(config.secret)
    return ImapSettings(
        host=config.host,
        port=config.port or default_port or IMAP_PORTS.get(config.security, 993),
        security=config.security,
        username=address if oauth else value.username,
        password=value.password,
        oauth_token=oauth,
        authorize_as=authorize_as,
        tls_verify=config.tls_verify,
        ca_pem=config.ca_certificate,
    )


__all__ = ["MissingSecret", "OAuthError", "ServerConfig", "oauth_token", "server_settings"]
