"""An access token for XOAUTH2 by the OAuth 2.0 client credentials grant."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from mailvault.accounts.secrets import SecretValue
from mailvault.sources.imap.client import ssl_context


class OAuthError(Exception):
    pass


def client_credentials_token(
    value: SecretValue, *, ca_pem: str = "", verify: bool = True, timeout: float = 30.0
) -> str:
    """An access token from the secret's token endpoint. ``ca_pem``/``verify``: the
    profile's trust settings (a private identity provider's certificate)."""
    if not value.token_endpoint.startswith("https://"):
        raise OAuthError("The OAuth secret needs an https:// token endpoint.")
    body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": value.client_id,
            "client_secret": value.client_secret,
            "scope": value.scope,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - https only, checked above
        value.token_endpoint, data=body, method="POST"
    )
    try:
        context = ssl_context(verify, ca_pem)
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise OAuthError(f"No access token from {value.token_endpoint}: {exc}") from exc
    token = data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise OAuthError(f"The token endpoint {value.token_endpoint} returned no access_token.")
    return str(token)
