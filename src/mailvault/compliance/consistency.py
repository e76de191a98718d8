"""Proof that deletions left the archive consistent: records, index and stored bytes.

Checks, for the active tenant:

* every ``Message`` has its bytes in the store;
* every index document belongs to a ``Message`` and every indexed ``Message`` has one;
* every message record left in the store belongs to a ``Message`` (a deleted message's
  bytes are forgotten; only its unreachable records wait for compaction, which is
  reported as reclaimable, not as a problem);
* no deletion is left half done (``PendingPurge`` rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailvault.archive.models import Message
from mailvault.archive.store import compaction, store_for
from mailvault.compliance.models_retention import PendingPurge
from mailvault.search import TenantIndex
from mailvault.tenancy.context import current_tenant


@dataclass
class ConsistencyReport:
    messages: int = 0
    indexed_documents: int = 0
    stored_messages: int = 0
    pending_purges: int = 0
    reclaimable_bytes: int = 0
    unreferenced_chunks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        lines = [
            f"messages: {self.messages}",
            f"index documents: {self.indexed_documents}",
            f"messages in the store: {self.stored_messages}",
            f"deletions waiting for their purge: {self.pending_purges}",
            f"bytes a compaction would free: {self.reclaimable_bytes} "
            f"({self.unreferenced_chunks} unreferenced chunks)",
            f"problems: {len(self.problems)}",
        ]
        return lines + [f"  {p}" for p in self.problems]


def _sample(values: set[int] | set[str], limit: int = 10) -> str:
    shown = sorted(values)[:limit]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(str(v) for v in shown) + more


def check() -> ConsistencyReport:
    tenant = current_tenant()
    report = ConsistencyReport()
    rows = dict(Message.objects.values_list("pk", "sha256"))
    indexed_flag = set(Message.objects.filter(indexed=True).values_list("pk", flat=True))
    report.messages = len(rows)
    report.pending_purges = PendingPurge.objects.count()
    if report.pending_purges:
        report.problems.append(
            f"{report.pending_purges} deletion(s) not purged yet (run the retention job or "
            "`mailvault compliance-check --repair`)"
        )
    in_index = TenantIndex.open(tenant.pk).message_ids()
    report.indexed_documents = len(in_index)
    stale = in_index - set(rows)
    if stale:
        report.problems.append(f"index documents without a message: {_sample(stale)}")
    unindexed = indexed_flag - in_index
    if unindexed:
        report.problems.append(
            f"messages marked indexed but not in the index: {_sample(unindexed)}"
        )
    with store_for(tenant) as store:
        stored = compaction.stored_messages(store)
        report.stored_messages = len(stored)
        shas = set(rows.values())
        missing = {pk for pk, sha in rows.items() if sha not in stored}
        if missing:
            report.problems.append(f"messages whose bytes are missing: {_sample(missing)}")
        orphans = stored - shas
        if orphans:
            report.problems.append(
                f"{len(orphans)} stored message(s) without a record: {_sample(orphans, 3)}"
            )
        waste = compaction.garbage(store)
        report.reclaimable_bytes = waste.dead_bytes
        report.unreferenced_chunks = waste.unreferenced_chunks
    return report
