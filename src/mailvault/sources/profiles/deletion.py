"""Which fetched messages may be deleted in the source mailbox, and the guard around it.

A message is deleted in the source only when all of this holds:

- the archiving part of the run succeeded (no fetch or folder errors; the caller checks);
- it is not flagged (``\\Flagged``);
- the bytes read back from the archive store hash (SHA-256) to the hash of the bytes
  fetched from the server;
- no legal hold covers its archived copy.

Any error while checking (the store, the hold check) stops all deletion: fail closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from mailvault.archive.models import Message
from mailvault.archive.store import store_for
from mailvault.tenancy.context import current_tenant


class DeletionGuardError(Exception):
    """A guard could not decide; nothing is deleted."""


@dataclass(frozen=True)
class Candidate:
    """A message fetched in this run: where it is in the source and its fetched hash."""

    folder_key: str  # the IMAP folder's server name, or "" for POP3
    source_id: str  # the IMAP UID or the POP3 UIDL
    sha256: str
    flagged: bool = False
    # IMAP: the folder's UIDVALIDITY when fetched; the UID names this message only under it.
    uidvalidity: int = 0


@dataclass
class Decision:
    deletable: list[tuple[Candidate, int]]  # with the archive id (Message.pk)
    flagged: int = 0
    unverified: int = 0
    held: int = 0


def held_message_ids(message_ids: Iterable[int]) -> set[int]:
    """The ids a legal hold covers, by the one deletion guard
    (``mailvault.compliance.deletion.guard``). Raises DeletionGuardError when it cannot
    tell (fails closed).

    Only the guard's hold refusals count here: deleting in the source keeps the archived
    copy, so the archive's minimum retention does not stand in the way."""
    ids = list(message_ids)
    try:
        from mailvault.compliance.deletion import REASON_HOLD, Purpose, guard

        _index_for_query_holds(ids)
        verdict = guard(ids, Purpose.SOURCE)
    except Exception as exc:
        raise DeletionGuardError(f"The legal hold check failed: {exc}") from exc
    return {mid for mid, reason in verdict.refused.items() if reason == REASON_HOLD}


def _index_for_query_holds(ids: list[int]) -> None:
    """A query hold cannot tell about a message not in the search index yet, so the
    guard counts it as held. Messages a killed run recorded but never indexed would stay
    in the source until the next integrity check: index them now."""
    from mailvault.compliance.holds import active_holds
    from mailvault.compliance.models_holds import LegalHold
    from mailvault.ingestion.reconcile import reindex_messages

    if not ids or not any(h.kind == LegalHold.Kind.QUERY for h in active_holds()):
        return
    unindexed: list[int] = []
    for start in range(0, len(ids), 500):
        unindexed += Message.objects.filter(
            pk__in=ids[start : start + 500], indexed=False
        ).values_list("pk", flat=True)
    if unindexed:
        reindex_messages(sorted(unindexed))


def decide(candidates: list[Candidate]) -> Decision:
    """Split the candidates; raises DeletionGuardError if any guard errs."""
    decision = Decision(deletable=[])
    unflagged = []
    for candidate in candidates:
        if candidate.flagged:
            decision.flagged += 1
        else:
            unflagged.append(candidate)
    if not unflagged:
        return decision
    shas = {c.sha256 for c in unflagged}
    ids = dict(Message.objects.filter(sha256__in=shas).values_list("sha256", "pk"))
    verified: dict[str, bool] = {}
    try:
        store = store_for(current_tenant())
        try:
            for sha in shas:
                if sha not in ids or not store.has(sha):
                    verified[sha] = False
                    continue
                verified[sha] = hashlib.sha256(store.get(sha)).hexdigest() == sha
        finally:
            store.close()
    except Exception as exc:
        raise DeletionGuardError(f"Reading the archived copies back failed: {exc}") from exc
    held = held_message_ids(ids[sha] for sha in shas if verified.get(sha))
    for candidate in unflagged:
        if not verified.get(candidate.sha256):
            decision.unverified += 1
            continue
        message_id = ids[candidate.sha256]
        if message_id in held:
            decision.held += 1
            continue
        decision.deletable.append((candidate, message_id))
    return decision
