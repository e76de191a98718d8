"""Searching on behalf of a Web Access user: the permission scope is derived here, from
``archive.access``, and nowhere else."""

from __future__ import annotations

from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.access import readable_mailbox_ids
from mailvault.ingestion.body_texts import body_texts
from mailvault.search.index import TenantIndex
from mailvault.search.types import Scope, SearchResult, SortOrder
from mailvault.tenancy.context import current_tenant


def scope_for(user: User) -> Scope:
    if user.has_role(Role.COMPLIANCE):
        return Scope.whole_tenant()
    return Scope.mailboxes(readable_mailbox_ids(user))


def search_for_user(
    user: User, query: str, *, sort: SortOrder = "date", limit: int = 50, offset: int = 0
) -> SearchResult:
    """Raises QuerySyntaxError with a message for the user when the query is malformed."""
    index = TenantIndex.open(current_tenant().pk)
    return index.search(
        query, scope_for(user), sort=sort, limit=limit, offset=offset, text_loader=body_texts
    )
