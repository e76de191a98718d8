"""When a schedule runs next: a pure module (no database, no clock of its own).

Wall-clock recurrences (daily, weekly, monthly, once) are computed in the schedule's own
IANA time zone and converted to UTC; interval recurrences (every N minutes, hourly) count
absolute time from midnight UTC and therefore ignore daylight saving changes.

Daylight saving rules, chosen so that a run is never doubled nor lost:

* A wall time that does not exist on a spring-forward day (02:30 in Europe/Berlin on
  2026-03-29) runs at the first valid wall time after the gap (03:00), once.
* A wall time that exists twice on a fall-back day (02:30 on 2026-10-25) runs once, at
  its first occurrence (``fold=0``).

Monthly on day 29-31 in a shorter month runs on that month's last day (a "day 31"
schedule runs on 30 April and on 28/29 February), so no month is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

ONCE_MIN_LEAD = timedelta(minutes=1)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Kind(StrEnum):
    ONCE = "once"
    EVERY_N_MINUTES = "every_n_minutes"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class RecurrenceError(ValueError):
    """A recurrence that cannot run; ``field`` names the offending input for forms."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Recurrence:
    """What a schedule says, independent of where it is stored.

    ``weekdays`` uses Python's numbering (0 = Monday … 6 = Sunday); ``at_time`` is "HH:MM".
    """

    kind: Kind
    time_zone: str = "UTC"
    run_at: datetime | None = None  # once: an aware datetime
    interval_minutes: int | None = None  # every_n_minutes
    minute: int | None = None  # hourly: minute of the hour
    at_time: str | None = None  # daily, weekly, monthly
    weekdays: frozenset[int] = field(default_factory=frozenset)  # weekly
    day_of_month: int | None = None  # monthly, 1-31


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or a RecurrenceError that says what is wrong."""
    if not name or name not in _zone_names():
        raise RecurrenceError(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin.", "time_zone"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - defensive
        raise RecurrenceError(f"Unknown time zone {name!r}.", "time_zone") from exc


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones() | {"UTC"})
    return _ZONES


def parse_hhmm(value: str | None) -> time:
    if value is None or not _HHMM.match(value):
        raise RecurrenceError(
            f"Time {value!r} is not a time of day as HH:MM (00:00-23:59).", "at_time"
        )
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def validate(rec: Recurrence, *, now: datetime) -> None:
    """Refuse a recurrence that cannot run, with a message fit for the schedule dialog."""
    _require_aware(now)
    zone(rec.time_zone)
    if rec.kind == Kind.ONCE:
        if rec.run_at is None:
            raise RecurrenceError("A run-once schedule needs a date and time.", "run_at")
        _require_aware(rec.run_at)
        if rec.run_at < now + ONCE_MIN_LEAD:
            raise RecurrenceError(
                "A run-once schedule must be at least 1 minute in the future.", "run_at"
            )
    elif rec.kind == Kind.EVERY_N_MINUTES:
        n = rec.interval_minutes
        if n is None or not 1 <= n <= 7 * 24 * 60:
            raise RecurrenceError(
                "The interval must be between 1 and 10080 minutes (one week).",
                "interval_minutes",
            )
    elif rec.kind == Kind.HOURLY:
        if rec.minute is None or not 0 <= rec.minute <= 59:
            raise RecurrenceError("The minute of the hour must be between 0 and 59.", "minute")
    elif rec.kind in (Kind.DAILY, Kind.WEEKLY, Kind.MONTHLY):
        parse_hhmm(rec.at_time)
        if rec.kind == Kind.WEEKLY:
            if not rec.weekdays:
                raise RecurrenceError("Choose at least one day of the week.", "weekdays")
            bad = sorted(d for d in rec.weekdays if not 0 <= d <= 6)
            if bad:
                raise RecurrenceError(
                    f"Weekday {bad[0]} is out of range (0 = Monday … 6 = Sunday).", "weekdays"
                )
        if rec.kind == Kind.MONTHLY and (
            rec.day_of_month is None or not 1 <= rec.day_of_month <= 31
        ):
            raise RecurrenceError("The day of the month must be between 1 and 31.", "day_of_month")
    else:  # pragma: no cover - Kind is closed
        raise RecurrenceError(f"Unknown recurrence {rec.kind!r}.", "kind")


def next_run(rec: Recurrence, after: datetime) -> datetime | None:
    """The first run strictly after ``after`` (aware), in UTC; None when there is none."""
    _require_aware(after)
    after = after.astimezone(UTC)
    if rec.kind == Kind.ONCE:
        assert rec.run_at is not None
        run_at = rec.run_at.astimezone(UTC)
        return run_at if run_at > after else None
    if rec.kind == Kind.EVERY_N_MINUTES:
        assert rec.interval_minutes
        return _next_interval(after, timedelta(minutes=rec.interval_minutes), timedelta(0))
    if rec.kind == Kind.HOURLY:
        assert rec.minute is not None
        return _next_interval(after, timedelta(hours=1), timedelta(minutes=rec.minute))

    tz = zone(rec.time_zone)
    at = parse_hhmm(rec.at_time)
    local_day = after.astimezone(tz).date() - timedelta(days=1)
    # Scan forward day by day; at most ~62 days for monthly, 7 for weekly.
    for _ in range(400):
        if _day_matches(rec, local_day):
            candidate = wall_to_utc(local_day, at, tz)
            if candidate > after:
                return candidate
        local_day += timedelta(days=1)
    raise AssertionError("no run within 400 days")  # pragma: no cover


def _next_interval(after: datetime, step: timedelta, offset: timedelta) -> datetime:
    """Next point of the absolute grid ``midnight UTC + offset + k * step`` after ``after``."""
    origin = datetime.combine(after.date(), time(0), tzinfo=UTC) + offset
    if origin > after:
        origin -= timedelta(days=1)
    steps = (after - origin) // step + 1
    return origin + steps * step


def _day_matches(rec: Recurrence, day: date) -> bool:
    if rec.kind == Kind.DAILY:
        return True
    if rec.kind == Kind.WEEKLY:
        return day.weekday() in rec.weekdays
    assert rec.day_of_month is not None
    return day.day == min(rec.day_of_month, _days_in_month(day))


def _days_in_month(day: date) -> int:
    first_next = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (first_next - timedelta(days=1)).day


def wall_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A local wall time as UTC: a gap moves to its end, an overlap takes the first."""
    naive = datetime.combine(day, at)
    if _exists(naive, tz):
        return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # Spring forward: the first existing minute after the gap (e.g. 03:00).
    probe = naive
    for _ in range(24 * 60):
        probe += timedelta(minutes=1)
        if _exists(probe, tz):
            return probe.replace(tzinfo=tz).astimezone(UTC)
    raise AssertionError("a daylight saving gap longer than a day")  # pragma: no cover


def _exists(naive: datetime, tz: ZoneInfo) -> bool:
    """Whether a wall time occurs in ``tz`` (a round trip through UTC gives it back)."""
    local = naive.replace(tzinfo=tz)
    return local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RecurrenceError("Times must carry a time zone.", "run_at")


def describe(rec: Recurrence) -> str:
    """A short human description for lists, e.g. "Weekly on Mon, Thu at 02:30 (Europe/Berlin)"."""
    tz = f" ({rec.time_zone})"
    if rec.kind == Kind.ONCE:
        when = rec.run_at.astimezone(zone(rec.time_zone)) if rec.run_at else None
        return f"Once at {when:%Y-%m-%d %H:%M}{tz}" if when else "Once"
    if rec.kind == Kind.EVERY_N_MINUTES:
        return f"Every {rec.interval_minutes} minutes"
    if rec.kind == Kind.HOURLY:
        return f"Hourly at minute {rec.minute}"
    if rec.kind == Kind.DAILY:
        return f"Daily at {rec.at_time}{tz}"
    if rec.kind == Kind.WEEKLY:
        days = ", ".join(WEEKDAY_NAMES[d] for d in sorted(rec.weekdays) if 0 <= d <= 6)
        return f"Weekly on {days} at {rec.at_time}{tz}"
    return f"Monthly on day {rec.day_of_month} at {rec.at_time}{tz}"
