"""The recurrence engine with a controlled clock, across the 2026 DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailvault.jobs.recurrence import Kind, Recurrence, RecurrenceError, next_run, validate

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def runs(rec: Recurrence, start: datetime, count: int) -> list[datetime]:
    out, t = [], start
    for _ in range(count):
        t = next_run(rec, t)
        assert t is not None and t.tzinfo is not None
        out.append(t)
    return out


def local(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def daily(at: str, tz: str) -> Recurrence:
    return Recurrence(Kind.DAILY, tz, at_time=at)


def test_daily_berlin_spring_forward_runs_once_at_0300() -> None:
    got = runs(daily("02:30", "Europe/Berlin"), datetime(2026, 3, 27, 12, tzinfo=UTC), 4)
    assert [local(t, BERLIN) for t in got] == [
        "2026-03-28 02:30 CET",
        "2026-03-29 03:00 CEST",
        "2026-03-30 02:30 CEST",
        "2026-03-31 02:30 CEST",
    ]


def test_daily_berlin_fall_back_runs_once_at_first_0230() -> None:
    got = runs(daily("02:30", "Europe/Berlin"), datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    assert got == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, fold=0
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    # Asked again just after the first 02:30 (while the clocks repeat the hour): no rerun.
    assert (
        next_run(daily("02:30", "Europe/Berlin"), datetime(2026, 10, 25, 1, 0, tzinfo=UTC))
        == got[1]
    )


def test_daily_new_york_dst_dates() -> None:
    rec = daily("02:30", "America/New_York")
    spring = runs(rec, datetime(2026, 3, 7, 12, tzinfo=UTC), 2)
    assert [local(t, NEW_YORK) for t in spring] == ["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT"]
    rec = daily("01:30", "America/New_York")
    fall = runs(rec, datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    assert fall == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, first
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_daily_normal_time_keeps_wall_clock_across_change() -> None:
    got = runs(daily("08:00", "Europe/Berlin"), datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [local(t, BERLIN) for t in got] == ["2026-03-29 08:00 CEST", "2026-03-30 08:00 CEST"]
    assert got[1] - got[0] == timedelta(hours=24)


def test_hourly_and_every_n_minutes_are_absolute_across_dst() -> None:
    hourly = Recurrence(Kind.HOURLY, "Europe/Berlin", minute=15)
    got = runs(hourly, datetime(2026, 10, 24, 23, 20, tzinfo=UTC), 5)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(got))
    assert got[0] == datetime(2026, 10, 25, 0, 15, tzinfo=UTC)
    every = Recurrence(Kind.EVERY_N_MINUTES, "America/New_York", interval_minutes=20)
    got = runs(every, datetime(2026, 3, 8, 6, 55, tzinfo=UTC), 4)
    assert got == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC) + timedelta(minutes=20 * i) for i in range(4)
    ]


def test_weekly_on_chosen_days() -> None:
    rec = Recurrence(Kind.WEEKLY, "Europe/Berlin", at_time="06:00", weekdays=frozenset({0, 3}))
    got = runs(rec, datetime(2026, 3, 25, 12, tzinfo=UTC), 4)  # a Wednesday
    assert [t.astimezone(BERLIN).strftime("%a %d %H:%M") for t in got] == [
        "Thu 26 06:00",
        "Mon 30 06:00",
        "Thu 02 06:00",
        "Mon 06 06:00",
    ]


def test_monthly_day_31_uses_last_day_of_short_months() -> None:
    rec = Recurrence(Kind.MONTHLY, "UTC", at_time="23:00", day_of_month=31)
    got = runs(rec, datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert [t.date().isoformat() for t in got] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
    ]


def test_once() -> None:
    at = NOW + timedelta(minutes=5)
    rec = Recurrence(Kind.ONCE, "Europe/Berlin", run_at=at)
    validate(rec, now=NOW)
    assert next_run(rec, NOW) == at
    assert next_run(rec, at) is None


@pytest.mark.parametrize("delta", [timedelta(minutes=-5), timedelta(seconds=30)])
def test_once_in_the_past_or_too_soon_is_refused(delta: timedelta) -> None:
    rec = Recurrence(Kind.ONCE, "UTC", run_at=NOW + delta)
    with pytest.raises(RecurrenceError, match="at least 1 minute in the future") as err:
        validate(rec, now=NOW)
    assert err.value.field == "run_at"


@pytest.mark.parametrize(
    ("rec", "field", "text"),
    [
        (Recurrence(Kind.EVERY_N_MINUTES, interval_minutes=0), "interval_minutes", "between 1"),
        (Recurrence(Kind.HOURLY, minute=60), "minute", "between 0 and 59"),
        (Recurrence(Kind.DAILY, at_time="24:00"), "at_time", "HH:MM"),
        (Recurrence(Kind.DAILY, at_time="7:5"), "at_time", "HH:MM"),
        (Recurrence(Kind.DAILY, at_time=None), "at_time", "HH:MM"),
        (
            Recurrence(Kind.WEEKLY, at_time="01:00", weekdays=frozenset({7})),
            "weekdays",
            "out of range",
        ),
        (Recurrence(Kind.WEEKLY, at_time="01:00"), "weekdays", "at least one day"),
        (Recurrence(Kind.MONTHLY, at_time="01:00", day_of_month=0), "day_of_month", "1 and 31"),
        (Recurrence(Kind.DAILY, "Mars/Olympus", at_time="01:00"), "time_zone", "Unknown time zone"),
        (Recurrence(Kind.ONCE), "run_at", "needs a date"),
    ],
)
def test_invalid_recurrences_are_refused(rec: Recurrence, field: str, text: str) -> None:
    with pytest.raises(RecurrenceError, match=text) as err:
        validate(rec, now=NOW)
    assert err.value.field == field


def test_naive_times_are_refused() -> None:
    with pytest.raises(RecurrenceError):
        next_run(daily("01:00", "UTC"), datetime(2026, 1, 1))
