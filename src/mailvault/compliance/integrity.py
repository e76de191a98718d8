"""Integrity of the archive: store verification as a job, and recovery from the packs.

``compliance.verify_store`` re-reads, decrypts, decompresses and re-hashes a tenant's
whole blob store (:meth:`BlobStore.verify`), writes every mismatch to the process log and
keeps the latest result on its configuration for the dashboard. :func:`recover` is the
other direction: it rebuilds the ``Message`` rows a database lost from the messages the
packs still hold (``mailvault recover --tenant NAME``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from mailvault.archive.models import Mailbox, Message
from mailvault.archive.store import BlobStore, StoreError, store_for
from mailvault.archive.store.maintenance import message_shas_in_packs
from mailvault.compliance import audit
from mailvault.compliance.models_audit import StoreVerification
from mailvault.compliance.models_retention import DeletionLogEntry, PendingPurge
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.context import JobContext
from mailvault.jobs.registry import process_type
from mailvault.tenancy.context import current_tenant

log = logging.getLogger("mailvault.compliance.integrity")

VERIFY_PROCESS = "compliance.verify_store"
RECOVERED_FOLDER = "Recovered"
# The process log keeps this many mismatches of one run; the rest are counted.
MAX_LOGGED_MISMATCHES = 500


def verification() -> StoreVerification:
    """The active tenant's verification configuration (created on first use)."""
    config, _ = StoreVerification.objects.get_or_create(tenant=current_tenant())
    return config


def latest_verification() -> StoreVerification | None:
    """The active tenant's last verification result, or None if it never ran."""
    return StoreVerification.objects.filter(last_run_at__isnull=False).first()


@process_type(
    VERIFY_PROCESS,
    "Store verification",
    config_model="compliance.StoreVerification",
    timeout_seconds=12 * 3600,
)
def verify_store(ctx: JobContext) -> None:
    config = ctx.config
    assert isinstance(config, StoreVerification)
    tenant = current_tenant()
    ctx.info(f"Verifying the store of tenant {tenant.name}.")
    ctx.check_cancelled()
    try:
        with store_for(tenant) as store:
            report = store.verify()
    except StoreError as exc:
        ctx.error(f"The store cannot be verified: {exc}")
        _save_result(config, checked=0, mismatches=1, ok=False)
        raise
    for line in report.summary()[:6]:
        ctx.info(line)
    for mismatch in report.mismatches[:MAX_LOGGED_MISMATCHES]:
        ctx.error(f"Mismatch: {mismatch}")
    hidden = len(report.mismatches) - MAX_LOGGED_MISMATCHES
    if hidden > 0:
        ctx.error(f"… and {hidden} more mismatches.")
    ctx.progress(1, 1)
    _save_result(config, checked=report.records, mismatches=len(report.mismatches), ok=report.ok)
    audit.record(
        "integrity.verify",
        actor=ctx.run.triggered_by,
        object=f"store of {tenant.name}",
        request_id=str(ctx.run.request_id),
        success=report.ok,
        message=f"{report.records} records, {report.messages} messages, "
        f"{len(report.mismatches)} mismatches",
    )


def _save_result(config: StoreVerification, *, checked: int, mismatches: int, ok: bool) -> None:
    config.last_run_at = timezone.now()
    config.last_checked = checked
    config.last_mismatches = mismatches
    config.last_ok = ok
    config.save(update_fields=["last_run_at", "last_checked", "last_mismatches", "last_ok"])


# --- recovery ---------------------------------------------------------------------


@dataclass
class RecoverReport:
    packs: int = 0
    in_packs: int = 0  # messages found in the packs
    present: int = 0  # already had their Message row
    recovered: int = 0
    deleted: int = 0  # deleted on purpose (retention, compliance deletion): not restored
    unreadable: list[str] = field(default_factory=list)
    reindexed: int = 0

    def summary(self) -> list[str]:
        return [
            f"packs read: {self.packs}",
            f"messages in the packs: {self.in_packs}",
            f"already in the database: {self.present}",
            f"recovered: {self.recovered}",
            f"deleted on purpose, not recovered: {self.deleted}",
            f"unreadable: {len(self.unreadable)}",
            f"indexed: {self.reindexed}",
        ]


def _message_shas(store: BlobStore) -> Iterator[tuple[int, list[str]]]:
    """(pack id, SHA-256 of every whole message in it), pack by pack, read from the pack
    files themselves (not the index); messages inside block records included."""
    return message_shas_in_packs(store)


def _deleted_on_purpose(shas: list[str]) -> set[str]:
    """Those of ``shas`` that a deletion removed (logged, or waiting for its purge)."""
    if not shas:
        return set()
    logged = DeletionLogEntry.objects.filter(sha256__in=shas).values_list("sha256", flat=True)
    pending = PendingPurge.objects.filter(sha256__in=shas).values_list("sha256", flat=True)
    return set(logged) | set(pending)


def recovered_mailbox() -> Mailbox:
    """The mailbox recovered messages of unknown placement are filed into."""
    tenant = current_tenant()
    mailbox, _ = Mailbox.objects.get_or_create(
        primary_address=f"recovered@{tenant.default_domain}",
        defaults={"display_name": "Recovered messages", "kind": Mailbox.Kind.SHARED},
    )
    return mailbox


def recover(
    *, reindex: bool = True, progress: Callable[[str], None] | None = None
) -> RecoverReport:
    """Rebuild the active tenant's missing Message rows from its packs (idempotent).

    Every message the packs hold but the database lacks — unless it was deleted on
    purpose (the deletion log, a pending purge, or the store forgot it) — goes through the
    ingestion
    pipeline again (parse, deduplicate — the store already has the bytes — record) and
    is filed in the "Recovered" folder of the Recovered mailbox; its placements are
    unknown. Recovered rows are unindexed until the reconciliation indexes them.
    """
    tenant = current_tenant()
    report = RecoverReport()
    mailbox: Mailbox | None = None
    with store_for(tenant) as store, Ingestor(index=False, keep_results=False) as ingestor:
        for pack, shas in _message_shas(store):
            report.packs += 1
            unique = sorted(set(shas))
            report.in_packs += len(unique)
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                present = set(
                    Message.objects.filter(sha256__in=chunk).values_list("sha256", flat=True)
                )
                report.present += len(present)
                deleted = _deleted_on_purpose([sha for sha in chunk if sha not in present])
                for sha in chunk:
                    if sha in present:
                        continue
                    if sha in deleted or not store.has(sha):
                        # A deleter removed the row on purpose; the purge drops the
                        # message from the store's index, the compaction its bytes.
                        report.deleted += 1
                        continue
                    try:
                        raw = store.get(sha)
                    except StoreError as exc:
                        report.unreadable.append(f"{sha}: {exc}")
                        continue
                    mailbox = mailbox or recovered_mailbox()
                    ingestor.add(
                        IngestRequest(
                            raw=raw,
                            source=Message.Source.FILE,
                            targets=[Target(mailbox, RECOVERED_FOLDER)],
                            source_ref=f"recovered from pack {pack}",
                        )
                    )
                    report.recovered += 1
            ingestor.flush()
            if progress:
                progress(f"pack {pack}: {len(unique)} messages")
    if reindex and report.recovered:
        from mailvault.ingestion.reconcile import reconcile_index

        report.reindexed = reconcile_index().indexed
    return report
