"""Legal holds: creating, releasing, and which messages they cover.

A hold covers a message while it is active (not released):

* tenant-wide: every message;
* mailbox: every message with a placement in that mailbox (now or later);
* query (a case): every message the query matches over the whole tenant. A message not
  yet indexed cannot be evaluated, so while any query hold is active such messages count
  as held (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.compliance import hooks
from mailvault.compliance.matching import check_query, matching_ids
from mailvault.compliance.models_holds import LegalHold


class HoldError(ValueError):
    pass


def active_holds() -> list[LegalHold]:
    return list(LegalHold.objects.filter(released_at__isnull=True).select_related("mailbox"))


def create_hold(
    *,
    name: str,
    kind: str,
    reason: str,
    actor: User | None,
    mailbox: Mailbox | None = None,
    query: str = "",
) -> LegalHold:
    name, reason, query = name.strip(), reason.strip(), query.strip()
    if not name or not reason:
        raise HoldError("A legal hold needs a name and a reason.")
    if kind == LegalHold.Kind.MAILBOX and mailbox is None:
        raise HoldError("Choose the mailbox to hold.")
    if kind == LegalHold.Kind.QUERY:
        if not query:
            raise HoldError("Enter the search query of the case.")
        check_query(query)
    if kind not in LegalHold.Kind.values:
        raise HoldError(f"Unknown kind of hold {kind!r}.")
    hold = LegalHold.objects.create(
        name=name,
        kind=kind,
        reason=reason,
        mailbox=mailbox if kind == LegalHold.Kind.MAILBOX else None,
        query=query if kind == LegalHold.Kind.QUERY else "",
        created_by=actor,
        created_by_name=actor.username if actor else "system",
    )
    hooks.record("compliance.hold.create", actor, hold, f"Legal hold {hold.name} created")
    return hold


def release_hold(hold: LegalHold, *, actor: User | None, reason: str = "") -> LegalHold:
    with transaction.atomic():
        hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
        if hold.released_at is not None:
            raise HoldError(f"The legal hold {hold.name} is already released.")
        hold.released_at = timezone.now()
        hold.released_by_name = actor.username if actor else "system"
        hold.release_reason = reason.strip()
        hold.save(update_fields=["released_at", "released_by_name", "release_reason"])
    hooks.record("compliance.hold.release", actor, hold, f"Legal hold {hold.name} released")
    return hold


def held_ids(message_ids: Iterable[int], holds: list[LegalHold] | None = None) -> set[int]:
    """Which of ``message_ids`` an active hold covers. Raises when it cannot tell."""
    ids = set(message_ids)
    if not ids:
        return set()
    holds = active_holds() if holds is None else holds
    if not holds:
        return set()
    if any(h.kind == LegalHold.Kind.TENANT for h in holds):
        return ids
    held: set[int] = set()
    mailbox_ids = [h.mailbox_id for h in holds if h.kind == LegalHold.Kind.MAILBOX]
    id_list = sorted(ids)
    if mailbox_ids:
        for start in range(0, len(id_list), 500):
            held.update(
                Placement.objects.filter(
                    mailbox_id__in=mailbox_ids, message_id__in=id_list[start : start + 500]
                ).values_list("message_id", flat=True)
            )
    queries = [h.query for h in holds if h.kind == LegalHold.Kind.QUERY]
    if queries:
        for start in range(0, len(id_list), 500):
            held.update(
                Message.objects.filter(
                    pk__in=id_list[start : start + 500], indexed=False
                ).values_list("pk", flat=True)
            )
        for query in queries:
            held.update(matching_ids(query) & ids)
    return held


def any_active_hold() -> bool:
    return LegalHold.objects.filter(released_at__isnull=True).exists()
