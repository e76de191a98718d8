"""Which archived messages a search query matches, all of them, across the whole tenant.

Retention filters and case holds are queries in the search language evaluated over every
mailbox (Bcc and envelope recipients included). ``TenantIndex.search`` pages at most 1000
hits with snippets; here only the message ids are read, from the fast field.
"""

from __future__ import annotations

from mailvault.ingestion.body_texts import body_texts
from mailvault.search import Scope, TenantIndex
from mailvault.search.query import parse
from mailvault.tenancy.context import current_tenant


def check_query(query: str) -> None:
    """Raise QuerySyntaxError (with a message for the user) for a malformed query."""
    parse(query)


def matching_ids(query: str) -> set[int]:
    """Ids of every indexed message of the active tenant that ``query`` matches.

    Raises on a malformed query, an unreadable index, or a message whose body text
    cannot be read to check a phrase: callers that decide about deletion let that
    propagate (fail closed).
    """
    index = TenantIndex.open(current_tenant().pk)
    return index.matching_ids(query, Scope.whole_tenant(), text_loader=body_texts, strict=True)
