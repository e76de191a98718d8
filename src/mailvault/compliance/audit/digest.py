"""The daily digest of newly archived messages, chained into the audit log.

For one UTC day, the SHA-256 of every message the tenant archived that day, sorted and
each followed by a newline, are hashed together; the entry ``archive.digest`` records
that hash and the count. With the audit chain behind it, a later claim that a message
was (or was not) archived on a day can be checked against the digest of that day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from mailvault.archive.models import Message
from mailvault.compliance import audit
from mailvault.compliance.models_audit import ArchiveDigestConfig, AuditEntry
from mailvault.jobs import services as jobs
from mailvault.jobs.context import JobContext
from mailvault.jobs.recurrence import Kind, Recurrence
from mailvault.jobs.registry import process_type
from mailvault.tenancy.context import current_tenant

DIGEST_PROCESS = "compliance.archive_digest"
ACTIVITY = "archive.digest"
# A digest job that has not run for a while catches up on at most this many days.
MAX_CATCH_UP_DAYS = 366
DEFAULT_AT = "00:15"  # UTC: the day before is complete by then


@dataclass(frozen=True)
class Digest:
    day: date
    count: int
    sha256: str


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def compute(day: date) -> Digest:
    """The digest of the messages the active tenant archived on ``day`` (UTC)."""
    start, end = day_bounds(day)
    shas = sorted(
        Message.objects.filter(archived_at__gte=start, archived_at__lt=end)
        .values_list("sha256", flat=True)
        .iterator(chunk_size=5000)
    )
    digest = hashlib.sha256()
    for sha in shas:
        digest.update(sha.encode("ascii") + b"\n")
    return Digest(day, len(shas), digest.hexdigest())


def object_of(day: date) -> str:
    return f"day={day.isoformat()}"


def record_day(day: date, *, actor: str = "", request_id: str = "") -> AuditEntry | None:
    """Append the day's digest entry; None if that day already has one."""
    if AuditEntry.objects.filter(activity=ACTIVITY, object=object_of(day)).exists():
        return None
    result = compute(day)
    entry = audit.record(
        ACTIVITY,
        tenant=current_tenant(),
        actor=actor or "system",
        actor_type="system",
        object=object_of(day),
        request_id=request_id,
        message=f"{result.count} messages archived; sha256={result.sha256}",
    )
    assert isinstance(entry, AuditEntry)
    return entry


def configuration() -> ArchiveDigestConfig:
    """The active tenant's digest configuration. Created on first use together with its
    default schedule (daily at :data:`DEFAULT_AT` UTC), which the Admin may change."""
    with transaction.atomic():
        config, created = ArchiveDigestConfig.objects.get_or_create(tenant=current_tenant())
        if created:
            jobs.save_schedule(
                DIGEST_PROCESS,
                config,
                Recurrence(kind=Kind.DAILY, time_zone="UTC", at_time=DEFAULT_AT),
                now=timezone.now(),
            )
    return config


@process_type(
    DIGEST_PROCESS,
    "Daily archive digest",
    config_model="compliance.ArchiveDigestConfig",
    timeout_seconds=3600,
)
def archive_digest(ctx: JobContext) -> None:
    """Digest every finished UTC day since the last one (yesterday on a daily run)."""
    config = ctx.config
    assert isinstance(config, ArchiveDigestConfig)
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    first = config.last_day + timedelta(days=1) if config.last_day else yesterday
    first = max(first, yesterday - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    day = first
    while day <= yesterday:
        ctx.check_cancelled()
        entry = record_day(day, actor=ctx.run.triggered_by, request_id=str(ctx.run.request_id))
        if entry is None:
            ctx.info(f"{day}: already digested.")
        else:
            ctx.info(f"{day}: {entry.message}")
        config.last_day = day
        config.save(update_fields=["last_day"])
        day += timedelta(days=1)
    ctx.progress(1, 1)
