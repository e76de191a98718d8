"""The hash chains of the audit log: append and validate.

Every entry's ``entry_hash`` is the SHA-256 of the previous entry's hash and a canonical
JSON serialisation of the entry's own fields (including its chain and sequence number),
so changing, removing or reordering any entry breaks every hash from there on. The chain
head records the last sequence number and hash: cutting entries off the end shows too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailvault.compliance.models_audit import (
    AuditChainHead,
    AuditEntry,
    AuditRecord,
    OperatorAuditEntry,
)
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

GENESIS = "0" * 64
OPERATOR_KEY = "operator"
# Validation reads the chain in pages of this many rows (bounded memory at any size).
PAGE = 2000
HASHED_FIELDS = (
    "seq",
    "time",
    "actor",
    "actor_type",
    "activity",
    "object",
    "request_id",
    "success",
    "message",
)


def chain_key(tenant: Tenant | None) -> str:
    return OPERATOR_KEY if tenant is None else f"tenant:{tenant.pk}"


def _time_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: AuditRecord, key: str) -> bytes:
    """The bytes an entry's hash covers (besides the previous hash)."""
    data: dict[str, Any] = {name: getattr(entry, name) for name in HASHED_FIELDS}
    data["time"] = _time_text(entry.time)
    data["chain"] = key
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def compute_hash(entry: AuditRecord, key: str, prev_hash: str) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical(entry, key))
    return digest.hexdigest()


def _head(key: str, tenant: Tenant | None) -> AuditChainHead:
    """The chain head, locked until the end of the caller's transaction (PostgreSQL; on
    SQLite the write lock of the first INSERT/UPDATE serialises appends)."""
    AuditChainHead.objects.get_or_create(key=key, defaults={"tenant": tenant})
    return AuditChainHead.objects.select_for_update().get(key=key)


def append(tenant: Tenant | None, **fields: Any) -> AuditRecord:
    """Add one entry at the end of the tenant's chain (or the operator chain)."""
    key = chain_key(tenant)
    with transaction.atomic(), tenant_context(tenant):
        head = _head(key, tenant)
        # Taken under the head's lock: times grow with the sequence numbers.
        fields.setdefault("time", timezone.now())
        entry: AuditRecord
        entry = OperatorAuditEntry(**fields) if tenant is None else AuditEntry(**fields)
        entry.seq = head.last_seq + 1
        entry.prev_hash = head.last_hash
        entry.entry_hash = compute_hash(entry, key, head.last_hash)
        entry.save(force_insert=True)
        head.last_seq = entry.seq
        head.last_hash = entry.entry_hash
        head.save(update_fields=["last_seq", "last_hash"])
    return entry


@dataclass(frozen=True)
class Validation:
    """The outcome of walking one chain."""

    checked: int
    intact: bool
    broken_seq: int | None = None
    broken_entry: AuditRecord | None = None
    problem: str = ""


def _entries(tenant: Tenant | None) -> Iterator[AuditRecord]:
    """Every entry of the chain in sequence order, a page at a time (keyset paging)."""
    last = 0
    while True:
        if tenant is None:
            page = list(OperatorAuditEntry.objects.filter(seq__gt=last).order_by("seq")[:PAGE])
        else:
            with tenant_context(tenant):
                page = list(AuditEntry.objects.filter(seq__gt=last).order_by("seq")[:PAGE])
        if not page:
            return
        yield from page
        last = page[-1].seq


def validate(tenant: Tenant | None) -> Validation:
    """Recompute every hash of the chain; name the first entry that does not hold."""
    key = chain_key(tenant)
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    for entry in _entries(tenant):
        problem = ""
        if entry.seq != expected_seq:
            problem = f"it is missing (the next entry present is #{entry.seq})"
            return Validation(checked, False, expected_seq, None, problem)
        if entry.prev_hash != prev_hash:
            problem = "its link to the previous entry does not match"
        elif compute_hash(entry, key, prev_hash) != entry.entry_hash:
            problem = "its content does not match its hash (it was changed)"
        if problem:
            return Validation(checked, False, entry.seq, entry, problem)
        checked += 1
        prev_hash = entry.entry_hash
        expected_seq += 1
    head = AuditChainHead.objects.filter(key=key).first()
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq, head.last_hash) != (last_seq, prev_hash):
        if head.last_seq > last_seq:
            problem = f"entries #{last_seq + 1} to #{head.last_seq} are missing at the end"
        else:
            problem = "the chain does not end where its head says"
        return Validation(checked, False, last_seq + 1, None, problem)
    return Validation(checked, True)
