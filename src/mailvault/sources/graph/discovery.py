"""Which Entra tenant a mail domain belongs to, from the authority's OpenID discovery.

``GET {authority}/{domain}/v2.0/.well-known/openid-configuration`` names the tenant in its
issuer (``…/{tenant id}/v2.0``). A single Microsoft 365 mailbox needs no directory service:
its domain tells which tenant's consent to use.
"""

from __future__ import annotations

import re

import httpx

from mailvault.sources.graph.client import GraphError, GraphSettings

_TENANT_IN_ISSUER = re.compile(r"/([0-9a-fA-F-]{36})/v2\.0/?$")


def tenant_id_for_domain(domain: str, config: GraphSettings | None = None) -> str:
    """The tenant id of ``domain``; GraphError when the authority does not know it."""
    config = config or GraphSettings.from_django()
    url = f"{config.authority_base.rstrip('/')}/{domain}/v2.0/.well-known/openid-configuration"
    try:
        response = httpx.get(url, verify=config.verify, timeout=15)
    except httpx.HTTPError as exc:
        raise GraphError(f"The Microsoft sign-in service could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise GraphError(
            f"No Microsoft 365 tenant is known for the domain {domain} "
            f"(OpenID discovery answered {response.status_code})."
        )
    issuer = str(response.json().get("issuer", ""))
    match = _TENANT_IN_ISSUER.search(issuer)
    if match is None:
        raise GraphError(f"The discovery document of {domain} names no tenant ({issuer!r}).")
    return match.group(1).lower()
