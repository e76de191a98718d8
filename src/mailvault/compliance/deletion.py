"""The one deletion guard, and the deleters that go through it.

Every path that removes archived mail — retention, compliance deletion, delete-in-source,
emptying a mailbox, tenant offboarding — asks :func:`guard` first. The guard refuses a
message that an active legal hold covers or that is younger than the tenant's minimum
retention (counted from its archive date). It fails closed: if anything goes wrong while
deciding (a query hold the index cannot answer, a database error), it raises
:class:`GuardFailure` and the caller deletes nothing.

A deletion removes the ``Message`` row (its placements cascade) and writes a
``PendingPurge`` row in the same transaction; :func:`purge_pending` then removes the index
document and forgets the stored bytes, and deletes the ``PendingPurge`` row. A crash in
between is finished by the next purge (every deleter runs it). Freed bytes are reclaimed
by the pack compaction (``archive/store/compaction.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.store import compaction, store_for
from mailvault.compliance import hooks
from mailvault.compliance.holds import held_ids
from mailvault.compliance.models_retention import (
    DeletionLogEntry,
    PendingPurge,
    RetentionSettings,
)
from mailvault.search import TenantIndex
from mailvault.tenancy.context import current_tenant

BATCH = 200


class Purpose(enum.StrEnum):
    RETENTION = "retention"
    COMPLIANCE = "compliance"
    SOURCE = "source"  # delete-in-source: the source removed it
    EMPTY_MAILBOX = "empty_mailbox"
    OFFBOARDING = "offboarding"


class GuardFailure(RuntimeError):
    """The guard could not decide; nothing was deleted."""


class DeletionRefused(RuntimeError):
    """Raised by all-or-nothing callers when the guard refused some message."""

    def __init__(self, refused: dict[int, str]) -> None:
        self.refused = refused
        reasons = sorted(set(refused.values()))
        super().__init__(f"{len(refused)} message(s) may not be deleted: {'; '.join(reasons)}")


REASON_HOLD = "under legal hold"
REASON_MINIMUM = "younger than the minimum retention"


@dataclass
class Verdict:
    allowed: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)


@dataclass
class DeletionReport:
    deleted: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)


def retention_settings() -> RetentionSettings:
    found = RetentionSettings.objects.first()
    if found is None:
        found, _ = RetentionSettings.objects.get_or_create()
    return found


def minimum_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=retention_settings().minimum_retention_days)


def guard(message_ids: Iterable[int], purpose: Purpose, *, now: datetime | None = None) -> Verdict:
    """Which of ``message_ids`` may be deleted now. Raises GuardFailure (fail closed)."""
    ids = set(message_ids)
    verdict = Verdict()
    if not ids:
        return verdict
    try:
        now = now or timezone.now()
        held = held_ids(ids)
        cutoff = minimum_cutoff(now)
        young: set[int] = set()
        id_list = sorted(ids - held)
        for start in range(0, len(id_list), 500):
            young.update(
                Message.objects.filter(
                    pk__in=id_list[start : start + 500], archived_at__gt=cutoff
                ).values_list("pk", flat=True)
            )
    except Exception as exc:
        raise GuardFailure(f"the deletion guard could not decide ({exc}); nothing deleted") from exc
    for mid in ids:
        if mid in held:
            verdict.refused[mid] = REASON_HOLD
        elif mid in young and purpose != Purpose.OFFBOARDING:
            verdict.refused[mid] = REASON_MINIMUM
        else:
            verdict.allowed.add(mid)
    return verdict


def delete_messages(
    message_ids: Iterable[int],
    *,
    purpose: Purpose,
    reason: str,
    actor: User | None,
    all_or_nothing: bool = False,
    now: datetime | None = None,
) -> DeletionReport:
    """Delete messages the guard allows, in committed batches; then purge them.

    With ``all_or_nothing`` a refusal of any message raises DeletionRefused before
    anything is deleted (the Compliance role's delete works this way).
    """
    ids = sorted(set(message_ids))
    report = DeletionReport()
    verdict = guard(ids, purpose, now=now)
    report.refused = verdict.refused
    if all_or_nothing and verdict.refused:
        raise DeletionRefused(verdict.refused)
    allowed = sorted(verdict.allowed)
    actor_name = actor.username if actor else "system"
    for start in range(0, len(allowed), BATCH):
        batch = allowed[start : start + BATCH]
        deleted = _delete_batch(batch, purpose, reason, actor_name, now)
        report.deleted += deleted
        report.missing += sorted(set(batch) - set(deleted))
        purge_pending()
    if report.deleted:
        hooks.record(
            f"compliance.delete.{purpose.value}",
            actor,
            None,
            f"{len(report.deleted)} message(s) deleted ({purpose.value}): {reason}"[:1000],
        )
    return report


def _delete_batch(
    batch: list[int], purpose: Purpose, reason: str, actor: str, now: datetime | None
) -> list[int]:
    with transaction.atomic():
        # Re-checked inside the transaction: a hold created since the first look wins.
        verdict = guard(batch, purpose, now=now)
        messages = list(
            Message.objects.select_for_update()
            .filter(pk__in=sorted(verdict.allowed))
            .only("pk", "sha256", "subject")
        )
        if not messages:
            return []
        PendingPurge.objects.bulk_create(
            [PendingPurge(message_pk=m.pk, sha256=m.sha256) for m in messages]
        )
        DeletionLogEntry.objects.bulk_create(
            [
                DeletionLogEntry(
                    message_pk=m.pk,
                    sha256=m.sha256,
                    subject=m.subject[:1000],
                    purpose=purpose.value,
                    reason=reason[:500],
                    actor=actor,
                )
                for m in messages
            ]
        )
        pks = [m.pk for m in messages]
        Placement.objects.filter(message_id__in=pks).delete()
        Message.objects.filter(pk__in=pks).delete()
    return pks


def purge_pending(*, limit: int = 5000) -> int:
    """Finish deletions: drop index documents, forget stored bytes. Idempotent."""
    pending = list(PendingPurge.objects.order_by("pk")[:limit])
    if not pending:
        return 0
    tenant = current_tenant()
    TenantIndex.open(tenant.pk).delete([p.message_pk for p in pending])
    shas = {p.sha256 for p in pending}
    # The same bytes archived again since (a new Message row) keep their record.
    alive = set(Message.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
    with store_for(tenant) as store:
        compaction.forget(store, sorted(shas - alive))
    PendingPurge.objects.filter(pk__in=[p.pk for p in pending]).delete()
    return len(pending)


def compact_store(*, min_dead_fraction: float = 0.0) -> compaction.CompactionReport:
    """Reclaim the bytes of forgotten messages (run after retention, or by command).

    Only packs whose dead share reaches ``min_dead_fraction`` are rewritten (0: every
    pack with any dead byte)."""
    purge_pending()
    with store_for(current_tenant()) as store:
        return compaction.compact(store, min_dead_fraction=min_dead_fraction)


# --- the other deleters ----------------------------------------------------------------


def remove_placements(
    placements: Iterable[Placement], *, purpose: Purpose, reason: str, actor: User | None
) -> DeletionReport:
    """Unfile messages (delete-in-source, emptying a folder or mailbox).

    A held or too-young message keeps all its placements. A message left without any
    placement is deleted through :func:`delete_messages`; one still filed elsewhere is
    re-indexed so its mailbox list is right.
    """
    rows = list(placements)
    message_ids = {p.message_id for p in rows}
    verdict = guard(message_ids, purpose)
    report = DeletionReport(refused=verdict.refused)
    removable = [p.pk for p in rows if p.message_id in verdict.allowed]
    with transaction.atomic():
        Placement.objects.filter(pk__in=removable).delete()
    touched = {p.message_id for p in rows if p.message_id in verdict.allowed}
    orphans = set(
        Message.objects.filter(pk__in=touched, placements__isnull=True).values_list("pk", flat=True)
    )
    if orphans:
        deleted = delete_messages(orphans, purpose=purpose, reason=reason, actor=actor)
        report.deleted = deleted.deleted
        report.refused.update(deleted.refused)
    still_filed = sorted(touched - orphans)
    if still_filed:
        _reindex(still_filed)
    return report


def _reindex(ids: list[int]) -> None:
    from mailvault.ingestion.reconcile import _index_ids

    Message.objects.filter(pk__in=ids).update(indexed=False)
    _index_ids(TenantIndex.open(current_tenant().pk), ids, None)


def empty_mailbox(mailbox: Mailbox, *, actor: User | None, reason: str = "") -> DeletionReport:
    """Remove everything from a mailbox that the guard allows (held mail stays)."""
    return remove_placements(
        Placement.objects.filter(mailbox=mailbox),
        purpose=Purpose.EMPTY_MAILBOX,
        reason=reason or f"mailbox {mailbox} emptied",
        actor=actor,
    )


class OffboardingRefused(RuntimeError):
    pass


def check_offboarding() -> None:
    """Tenant offboarding refuses while any legal hold is active (fail closed)."""
    from mailvault.compliance.holds import active_holds

    try:
        holds = active_holds()
    except Exception as exc:
        raise OffboardingRefused(f"could not check legal holds ({exc})") from exc
    if holds:
        names = ", ".join(h.name for h in holds)
        raise OffboardingRefused(
            f"The tenant is under {len(holds)} active legal hold(s) ({names}); "
            "release them before offboarding."
        )
