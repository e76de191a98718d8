"""The Microsoft 365 connector: MSAL tokens and Microsoft Graph (see :mod:`.client`)."""

from mailvault.sources.graph.client import (
    GRAPH_SCOPE,
    GraphClient,
    GraphError,
    GraphSettings,
    ResyncRequired,
    TokenError,
    TokenProvider,
    retry_after_seconds,
)

__all__ = [
    "GRAPH_SCOPE",
    "GraphClient",
    "GraphError",
    "GraphSettings",
    "ResyncRequired",
    "TokenError",
    "TokenProvider",
    "retry_after_seconds",
]
