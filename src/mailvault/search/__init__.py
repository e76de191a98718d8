"""Full-text search over a tenant's archive (tantivy), behind a small public API.

Use :class:`TenantIndex` (``open(tenant_id)``, ``add``, ``delete``, ``reindex``,
``message_ids``, ``search``) with :class:`IndexDocument` and a :class:`Scope`. The schema,
analyzers and query compilation are private modules (``_schema``, ``_compile``); the query
language is documented in :mod:`mailvault.search.query`.
"""

from mailvault.search.index import IndexSchemaMismatch, TenantIndex
from mailvault.search.query import QuerySyntaxError
from mailvault.search.types import Address, IndexDocument, Scope, SearchHit, SearchResult

__all__ = [
    "Address",
    "IndexDocument",
    "IndexSchemaMismatch",
    "QuerySyntaxError",
    "Scope",
    "SearchHit",
    "SearchResult",
    "TenantIndex",
]
