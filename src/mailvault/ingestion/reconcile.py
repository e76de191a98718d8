"""Keeping the search index a complete projection of the archive.

``reconcile_index`` finds what the index lacks — messages recorded but never indexed (a
crash between the record and index steps), or missing from the index for any other
reason — re-reads them from the store and indexes them; it also drops index entries of
messages that no longer exist. ``rebuild_index`` starts from an empty index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mailvault.archive.models import Message
from mailvault.archive.store import store_for
from mailvault.ingestion import steps
from mailvault.ingestion.extract import Extractor
from mailvault.ingestion.parse import parse_message
from mailvault.search import IndexSchemaMismatch, TenantIndex
from mailvault.tenancy.context import current_tenant, tenant_context
from mailvault.tenancy.models import Tenant

BATCH = 1000


@dataclass
class ReconcileReport:
    indexed: int = 0
    removed: int = 0


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _index_ids(
    index: TenantIndex, ids: list[int], progress: Callable[[int, int], None] | None
) -> int:
    tenant = current_tenant()
    done = 0
    with store_for(tenant) as store, Extractor() as extractor:
        for chunk in _chunks(ids):
            messages = list(Message.objects.filter(pk__in=chunk))
            parsed = [parse_message(store.get(m.sha256)) for m in messages]
            texts = steps.attachment_texts(extractor, parsed)
            steps.index_messages(
                index,
                [steps.Indexable(m, p, t) for m, p, t in zip(messages, parsed, texts, strict=True)],
            )
            done += len(messages)
            if progress:
                progress(done, len(ids))
    return done


def reindex_messages(message_ids: list[int]) -> int:
    """Refresh the index documents of these messages of the active tenant (after they
    moved between folders or mailboxes)."""
    return _index_ids(TenantIndex.open(current_tenant().pk), message_ids, None)


def reconcile_index(progress: Callable[[int, int], None] | None = None) -> ReconcileReport:
    """Index what the active tenant's index lacks and drop what it should not have."""
    index = TenantIndex.open(current_tenant().pk)
    in_index = index.message_ids()
    in_archive = set(Message.objects.values_list("pk", flat=True))
    unindexed = set(Message.objects.filter(indexed=False).values_list("pk", flat=True))
    missing = sorted((in_archive - in_index) | unindexed)
    stale = in_index - in_archive
    report = ReconcileReport()
    if stale:
        index.delete(stale)
        report.removed = len(stale)
    report.indexed = _index_ids(index, missing, progress)
    return report


def rebuild_index(progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild the active tenant's index from the store (``mailvault reindex``).

    An index of an older schema is deleted first and built anew.
    """
    tenant_id = current_tenant().pk
    try:
        index = TenantIndex.open(tenant_id)
    except IndexSchemaMismatch:
        TenantIndex.destroy(tenant_id)
        index = TenantIndex.open(tenant_id)
    index.clear()
    Message.objects.update(indexed=False)
    ids = sorted(Message.objects.values_list("pk", flat=True))
    return _index_ids(index, ids, progress)


def upgrade_indexes(report: Callable[[str], None]) -> int:
    """Rebuild every tenant index written with an older schema (at ``mailvault run``
    after an upgrade); returns how many were rebuilt."""
    rebuilt = 0
    for tenant in Tenant.objects.order_by("pk"):
        try:
            TenantIndex.open(tenant.pk)
        except IndexSchemaMismatch as exc:
            report(f"{tenant.name}: {exc}; rebuilding it now")
            with tenant_context(tenant):
                count = rebuild_index()
            report(f"{tenant.name}: {count} messages indexed")
            rebuilt += 1
    return rebuilt
