"""Retention policies: managing them, deciding what has expired, and the retention run.

Rules (the safe reading of every ambiguity):

* Only enabled policies count. A message no enabled policy covers is kept.
* A message covered by several policies is deleted only when it has expired under every
  one of them, each by its own reference date: the longest retention wins. An enabled
  keep-forever policy (the default one) that covers a message keeps it.
* Reference date "message date": the earlier of the message's Date header and its archive
  date, so a message dated in the future (or undated) is counted from when it was
  archived and never expires early.
* A filtered policy's terms are ANDed. Subject, body, from and recipient terms go through
  the search index (``subject:(…)`` …, recipients as To, Cc or Bcc including envelope
  recipients); attachment content uses ``attachment:``, which also matches attachment
  names; attachment-name terms are checked against the names themselves. Messages the
  index has not seen yet are skipped (their filters cannot be evaluated) until indexed.
* The run takes a snapshot of the policies when it starts: editing a policy during a run
  affects the next run.
* Deletion goes through :mod:`.deletion` in small committed batches (holds and the
  minimum retention are checked there again); a crashed run leaves only whole batches
  done, and the next run finishes the rest and any pending purge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.archive.models import Message
from mailvault.compliance import deletion, hooks
from mailvault.compliance.matching import check_query, matching_ids
from mailvault.compliance.models_retention import (
    DEFAULT_POLICY_NAME,
    RetentionPolicy,
    RetentionSettings,
)

SCAN_BATCH = 2000

_QUERY_FIELDS = (
    ("subject_terms", "subject"),
    ("body_terms", "body"),
    ("attachment_content_terms", "attachment"),
    ("from_terms", "from"),
)


class PolicyError(ValueError):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def ensure_default_policy() -> RetentionPolicy:
    found = RetentionPolicy.objects.filter(is_default=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return RetentionPolicy.objects.create(
                name=DEFAULT_POLICY_NAME,
                is_default=True,
                enabled=True,
                period_days=None,
                scope=RetentionPolicy.Scope.ALL,
                execution_order=0,
            )
    except IntegrityError:
        return RetentionPolicy.objects.get(is_default=True)


def settings() -> RetentionSettings:
    return deletion.retention_settings()


def policy_query(policy: RetentionPolicy) -> str:
    """The search-language query of a filtered policy's indexed terms ('' when none)."""
    parts = []
    for attr, name in _QUERY_FIELDS:
        text = getattr(policy, attr).strip()
        if text:
            parts.append(f"{name}:({text})")
    recipients = policy.recipient_terms.strip()
    if recipients:
        parts.append(f"(to:({recipients}) OR cc:({recipients}) OR bcc:({recipients}))")
    return " ".join(parts)


def _name_terms(policy: RetentionPolicy) -> list[str]:
    return [t.lower() for t in policy.attachment_name_terms.split() if t.strip()]


def validate(policy: RetentionPolicy) -> None:
    if not policy.name.strip():
        raise PolicyError("Enter a name.", "name")
    if policy.is_default:
        return
    if policy.scope == RetentionPolicy.Scope.FILTERED:
        query = policy_query(policy)
        if not query and not _name_terms(policy):
            raise PolicyError("A filtered policy needs at least one filter term.", "scope")
        if query:
            try:
                check_query(query)
            except ValueError as exc:
                raise PolicyError(f"A filter term is not valid: {exc}", "subject_terms") from exc


def save_policy(policy: RetentionPolicy, *, actor: User | None) -> RetentionPolicy:
    """Create or update a policy (the default one: only enabled and order change)."""
    if policy.is_default:
        policy.period_days = None
        policy.scope = RetentionPolicy.Scope.ALL
    validate(policy)
    creating = policy.pk is None
    policy.updated_at = timezone.now()
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise PolicyError("A policy with this name exists already.", "name") from None
    verb = "created" if creating else "changed"
    hooks.record(f"compliance.retention.{verb}", actor, policy, f"Retention policy {policy} {verb}")
    return policy


def delete_policy(policy: RetentionPolicy, *, actor: User | None) -> None:
    if policy.is_default:
        raise PolicyError("The default policy cannot be deleted; deactivate it instead.")
    name = str(policy)
    policy.delete()
    hooks.record("compliance.retention.deleted", actor, None, f"Retention policy {name} deleted")


# --- evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySnapshot:
    pk: int
    name: str
    period_days: int | None
    reference: str
    covers_all: bool
    ids: frozenset[int]  # matching message ids for a filtered policy with indexed terms
    uses_index: bool
    name_terms: tuple[str, ...]

    def covers(self, message: Message) -> bool:
        if self.covers_all:
            return True
        if self.uses_index and message.pk not in self.ids:
            return False
        if self.name_terms:
            names = [n.lower() for n in message.attachment_names or []]
            return all(any(term in n for n in names) for term in self.name_terms)
        return True

    def expired(self, message: Message, now: datetime) -> bool:
        if self.period_days is None:
            return False
        return reference_date(message, self.reference) <= now - timedelta(days=self.period_days)


def reference_date(message: Message, reference: str) -> datetime:
    if reference == RetentionPolicy.Reference.MESSAGE_DATE and message.date is not None:
        return min(message.date, message.archived_at)
    return message.archived_at


def snapshot() -> list[PolicySnapshot]:
    """The enabled policies as they are now, their index filters evaluated once."""
    ensure_default_policy()
    found = []
    for policy in RetentionPolicy.objects.filter(enabled=True).order_by("execution_order", "pk"):
        query = "" if policy.scope == RetentionPolicy.Scope.ALL else policy_query(policy)
        found.append(
            PolicySnapshot(
                pk=policy.pk,
                name=policy.name,
                period_days=policy.period_days,
                reference=policy.reference,
                covers_all=policy.scope == RetentionPolicy.Scope.ALL,
                ids=frozenset(matching_ids(query)) if query else frozenset(),
                uses_index=bool(query),
                name_terms=tuple(_name_terms(policy)),
            )
        )
    return found


def expired(message: Message, policies: list[PolicySnapshot], now: datetime) -> bool:
    """Covered by at least one policy, and expired under every policy that covers it."""
    covering = [p for p in policies if p.covers(message)]
    return bool(covering) and all(p.expired(message, now) for p in covering)


def expired_ids(policies: list[PolicySnapshot], now: datetime) -> Iterator[list[int]]:
    """Batches of ids of indexed messages that have expired (before the guard)."""
    if not any(p.period_days is not None for p in policies):
        return
    messages = (
        Message.objects.filter(indexed=True)
        .only("pk", "date", "archived_at", "attachment_names")
        .order_by("pk")
    )
    batch: list[int] = []
    for message in messages.iterator(chunk_size=SCAN_BATCH):
        if expired(message, policies, now):
            batch.append(message.pk)
            if len(batch) >= deletion.BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


@dataclass
class RetentionReport:
    expired: int = 0
    deleted: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)
    would_delete: list[int] = field(default_factory=list)


def run(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    actor: User | None = None,
    check: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RetentionReport:
    """Apply the enabled policies once (``dry_run``: only list what would go)."""
    now = now or timezone.now()
    report = RetentionReport()
    if not dry_run:
        deletion.purge_pending()  # a crashed run's leftovers first
    policies = snapshot()
    report.policies = [p.name for p in policies]
    reason = "retention: " + ", ".join(p.name for p in policies if p.period_days is not None)
    for batch in expired_ids(policies, now):
        if check is not None:
            check()
        report.expired += len(batch)
        if dry_run:
            verdict = deletion.guard(batch, deletion.Purpose.RETENTION, now=now)
            report.would_delete += sorted(verdict.allowed)
            report.refused.update(verdict.refused)
            continue
        done = deletion.delete_messages(
            batch, purpose=deletion.Purpose.RETENTION, reason=reason, actor=actor, now=now
        )
        report.deleted += done.deleted
        report.refused.update(done.refused)
        if progress is not None:
            progress(report.expired)
    return report
