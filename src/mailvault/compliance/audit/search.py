"""Searching and exporting the active tenant's audit log (the Auditor's pages)."""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO

from django.db.models import Q, QuerySet

from mailvault.compliance.models_audit import AuditEntry
from mailvault.tenancy.context import current_tenant, tenant_context
from mailvault.tenancy.models import Tenant

MAX_RESULTS = 10_000
MAX_EXPORT_DAYS = 366
CSV_COLUMNS = (
    "seq",
    "time",
    "actor",
    "actor_type",
    "activity",
    "object",
    "request_id",
    "success",
    "message",
    "prev_hash",
    "entry_hash",
)


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    activity: str = ""
    actor: str = ""
    text: str = ""
    success: bool | None = None


def search(f: AuditFilter | None = None) -> QuerySet[AuditEntry]:
    """Matching entries, newest first, at most :data:`MAX_RESULTS`."""
    f = f or AuditFilter()
    entries = AuditEntry.objects.all()
    if f.since is not None:
        entries = entries.filter(time__gte=f.since)
    if f.until is not None:
        entries = entries.filter(time__lte=f.until)
    if f.activity:
        entries = entries.filter(activity=f.activity)
    if f.actor:
        entries = entries.filter(actor__icontains=f.actor)
    if f.text:
        entries = entries.filter(
            Q(message__icontains=f.text)
            | Q(object__icontains=f.text)
            | Q(activity__icontains=f.text)
            | Q(actor__icontains=f.text)
            | Q(request_id__iexact=f.text)
        )
    if f.success is not None:
        entries = entries.filter(success=f.success)
    return entries.order_by("-seq")[:MAX_RESULTS]


def activities() -> list[str]:
    """The activities this tenant's log holds (for the filter's choices)."""
    return sorted(set(AuditEntry.objects.values_list("activity", flat=True).distinct()))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def csv_filename(day: date) -> str:
    return f"audit-{day.isoformat()}.csv"


def _csv_value(entry: AuditEntry, column: str) -> str:
    value = getattr(entry, column)
    if column == "time":
        return str(value.astimezone(UTC).isoformat())
    if column == "success":
        return "true" if value else "false"
    return str(value)


def csv_lines(day: date) -> Iterator[str]:
    """The CSV of one UTC day's entries in chain order, a line at a time.

    The active tenant is taken now: a streaming response iterates after the request's
    tenant context has ended."""
    return _csv_lines(current_tenant(), day)


def _csv_lines(tenant: Tenant, day: date) -> Iterator[str]:
    with tenant_context(tenant):
        yield from _csv_rows(day)


def _csv_rows(day: date) -> Iterator[str]:
    start, end = day_bounds(day)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    entries = AuditEntry.objects.filter(time__gte=start, time__lt=end).order_by("seq")
    for entry in entries.iterator(chunk_size=2000):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_value(entry, column) for column in CSV_COLUMNS])
        yield buffer.getvalue()


def days_with_entries(first: date, last: date) -> list[date]:
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    entries = AuditEntry.objects.filter(time__gte=start, time__lt=end)
    return sorted({d.date() for d in entries.datetimes("time", "day", tzinfo=UTC)})


def zip_of_days(first: date, last: date) -> IO[bytes]:
    """A ZIP with one CSV per UTC day that has entries, spooled to disk when large."""
    if last < first:
        raise ValueError("The last day is before the first.")
    if (last - first).days >= MAX_EXPORT_DAYS:
        raise ValueError(f"Export at most {MAX_EXPORT_DAYS} days at once.")
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - returned
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for day in days_with_entries(first, last):
            with archive.open(csv_filename(day), "w") as member:
                for line in csv_lines(day):
                    member.write(line.encode("utf-8"))
    spool.seek(0)
    return spool
