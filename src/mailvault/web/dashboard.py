"""What the Admin Access dashboard shows: notifications, quotas and mail statistics.

Read-only. Each notification is a small check registered with :func:`notice_check`; it
says what is missing or inconsistent and links to the page that fixes it. A check that
fails with an error shows up as a notification of its own instead of hiding the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse

from mailvault.tenancy.context import current_tenant
from mailvault.web.navigation import ADMIN_MENU

log = logging.getLogger("mailvault.web")

QUOTA_WARNING = 0.9


@dataclass(frozen=True)
class Notice:
    text: str
    fix_label: str
    fix_url: str
    level: str = "warning"  # or "error"


NoticeCheck = Callable[[datetime], Iterable[Notice]]
_CHECKS: list[NoticeCheck] = []


def notice_check(check: NoticeCheck) -> NoticeCheck:
    _CHECKS.append(check)
    return check


def section_url(slug: str) -> str:
    """The Admin Access page of a menu section (its "not built yet" page if unbuilt)."""
    for section in ADMIN_MENU:
        for item in section.items:
            if item.slug == slug:
                if item.url_name:
                    try:
                        return reverse(item.url_name)
                    except NoReverseMatch:
                        break
                return reverse("adminaccess:not_built", args=[slug])
    raise KeyError(slug)


def notices(now: datetime) -> list[Notice]:
    found: list[Notice] = []
    for check in _CHECKS:
        try:
            found.extend(check(now))
        except Exception as exc:  # one broken check must not hide the others
            log.exception("dashboard check %s failed", check.__name__)
            found.append(
                Notice(
                    f"A dashboard check could not run ({check.__name__}: {exc}).",
                    "Process Log",
                    section_url("process-log"),
                    level="error",
                )
            )
    return found


# --- quotas and statistics -----------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    label: str
    used: int
    limit: int | None
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.limit else self.used / self.limit

    @property
    def percent(self) -> int | None:
        ratio = self.ratio
        return None if ratio is None else round(ratio * 100)


def _directory_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def storage_used() -> int:
    """Bytes on disk of the active tenant's store and search index."""
    from mailvault.archive.store.tenant_keys import store_root
    from mailvault.search.index import TenantIndex

    tenant = current_tenant()
    return _directory_bytes(store_root(tenant)) + _directory_bytes(TenantIndex.open(tenant.pk).path)


def quotas() -> list[Quota]:
    from mailvault.accounts.models import User
    from mailvault.archive.models import Mailbox

    tenant = current_tenant()
    return [
        Quota("Users", User.objects.count(), tenant.max_users),
        Quota("Mailboxes", Mailbox.objects.count(), tenant.max_mailboxes),
        Quota("Storage", storage_used(), tenant.max_storage_bytes, unit="bytes"),
    ]


@dataclass(frozen=True)
class Bar:
    day: date
    value: int
    x: float
    height: float

    @property
    def y(self) -> float:
        return CHART_HEIGHT - self.height


@dataclass
class MailStatistics:
    last_24_hours: int = 0
    last_30_days: int = 0
    all_time: int = 0
    bytes_all_time: int = 0
    per_day: list[Bar] = field(default_factory=list)
    storage_per_day: list[Bar] = field(default_factory=list)


CHART_DAYS = 30
CHART_HEIGHT = 80.0
BAR_WIDTH = 10.0


def _bars(values: list[tuple[date, int]]) -> list[Bar]:
    top = max((v for _, v in values), default=0) or 1
    return [
        Bar(day, value, x=i * BAR_WIDTH, height=round(CHART_HEIGHT * value / top, 1))
        for i, (day, value) in enumerate(values)
    ]


def _days(first: date, count: int) -> Iterator[date]:
    for offset in range(count):
        yield first + timedelta(days=offset)


def mail_statistics(now: datetime) -> MailStatistics:
    """Messages archived in the last 24 hours, 30 days and ever; per day over the last 30
    days, and the archived bytes growing over the same days (original sizes)."""
    from mailvault.archive.models import Message

    stats = MailStatistics()
    messages = Message.objects.all()
    totals = messages.aggregate(count=Count("pk"), size=Sum("size"))
    stats.all_time = totals["count"] or 0
    stats.bytes_all_time = totals["size"] or 0
    stats.last_24_hours = messages.filter(archived_at__gte=now - timedelta(hours=24)).count()
    first_day = (now - timedelta(days=CHART_DAYS - 1)).date()
    stats.last_30_days = messages.filter(archived_at__date__gte=first_day).count()
    daily = {
        row["day"]: (row["count"], row["size"] or 0)
        for row in messages.filter(archived_at__date__gte=first_day)
        .annotate(day=TruncDate("archived_at"))
        .values("day")
        .annotate(count=Count("pk"), size=Sum("size"))
    }
    before = messages.filter(archived_at__date__lt=first_day).aggregate(size=Sum("size"))
    running = before["size"] or 0
    counts: list[tuple[date, int]] = []
    storage: list[tuple[date, int]] = []
    for day in _days(first_day, CHART_DAYS):
        count, size = daily.get(day, (0, 0))
        running += size
        counts.append((day, count))
        storage.append((day, running))
    stats.per_day = _bars(counts)
    stats.storage_per_day = _bars(storage)
    return stats
