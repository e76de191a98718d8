"""Which archived messages a search query matches, all of them, across the whole tenant.

Retention filters and case holds are queries in the search language evaluated over every
mailbox (Bcc and envelope recipients included). ``TenantIndex.search`` pages at most 1000
hits with snippets; here only the message ids are read, from the fast field.
"""

from __future__ import annotations

from tantivy import Occur, Query

from mailvault.search import Scope, TenantIndex
from mailvault.search._compile import Compiler
from mailvault.search.index import _default_tz
from mailvault.search.query import parse
from mailvault.tenancy.context import current_tenant


def check_query(query: str) -> None:
    """Raise QuerySyntaxError (with a message for the user) for a malformed query."""
    parse(query)


def matching_ids(query: str) -> set[int]:
    """Ids of every indexed message of the active tenant that ``query`` matches.

    Raises on a malformed query or an unreadable index: callers that decide about
    deletion let that propagate (fail closed).
    """
    index = TenantIndex.open(current_tenant().pk)
    node = parse(query)
    searcher = index._searcher()
    total = int(searcher.num_docs)
    if not total:
        return set()
    compiler = Compiler(
        index._schema, _default_tz(), True, searcher=searcher, regex_cache=index._regex_cache
    )
    compiled = compiler.compile(node)
    final = Query.boolean_query(
        [
            (Occur.Must, compiled),
            (Occur.Must, Query.const_score_query(index._scope_query(Scope.whole_tenant()), 0.0)),
        ]
    )
    result = searcher.search(final, limit=total, count=False)
    addresses = [address for _score, address in result.hits]
    values = searcher.fast_field_values("message_id", addresses)
    return {int(v) for v in values if v is not None}
