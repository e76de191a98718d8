"""Forms of the schedule dialog, the process log filters and File Import."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.conf import settings
from django.utils import timezone

from mailvault.archive.models import Mailbox
from mailvault.jobs import registry
from mailvault.jobs.models import Schedule, Severity
from mailvault.jobs.recurrence import (
    WEEKDAY_NAMES,
    Kind,
    Recurrence,
    RecurrenceError,
    validate,
    zone,
)

KIND_CHOICES = [
    (Kind.ONCE.value, "Once"),
    (Kind.EVERY_N_MINUTES.value, "Every N minutes"),
    (Kind.HOURLY.value, "Hourly"),
    (Kind.DAILY.value, "Daily"),
    (Kind.WEEKLY.value, "Weekly"),
    (Kind.MONTHLY.value, "Monthly"),
]
WEEKDAY_CHOICES = [(str(i), name) for i, name in enumerate(WEEKDAY_NAMES)]
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


_ZONES: list[str] = []


def zone_names() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(available_timezones() | {"UTC"}))
    return _ZONES


def zone_choices() -> list[tuple[str, str]]:
    return [(z, z) for z in zone_names()]


def default_zone(browser_zone: str = "") -> str:
    """The admin's zone: the browser's when it names a known zone, else TIME_ZONE."""
    if browser_zone in zone_names():
        return browser_zone
    return settings.TIME_ZONE if settings.TIME_ZONE in zone_names() else "UTC"


class ScheduleForm(forms.Form):
    """The schedule dialog. Validation is :func:`mailvault.jobs.recurrence.validate`'s, and
    its errors land at the field they name."""

    kind = forms.ChoiceField(label="Runs", choices=KIND_CHOICES, initial=Kind.DAILY.value)
    run_at = forms.DateTimeField(
        label="Date and time",
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        help_text="Once: at least 1 minute from now.",
    )
    interval_minutes = forms.IntegerField(label="Every (minutes)", required=False)
    minute = forms.IntegerField(label="Minute of the hour", required=False)
    at_time = forms.CharField(
        label="At (HH:MM)",
        required=False,
        max_length=5,
        initial="02:00",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    weekdays = forms.MultipleChoiceField(
        label="On",
        required=False,
        choices=WEEKDAY_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )
    day_of_month = forms.IntegerField(
        label="Day of the month",
        required=False,
        help_text="29-31 run on the last day of shorter months.",
    )
    # A CharField (with a select) so that an unknown zone gets recurrence's own message.
    time_zone = forms.CharField(label="Time zone", required=False, widget=forms.Select)
    browser_time_zone = forms.CharField(required=False, widget=forms.HiddenInput)
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now or timezone.now()
        self.fields["time_zone"].widget.choices = [("", "My time zone"), *zone_choices()]
        self.recurrence: Recurrence | None = None

    @classmethod
    def initial_for(cls, schedule: Schedule) -> dict[str, Any]:
        run_at = None
        if schedule.run_at is not None:
            run_at = schedule.run_at.astimezone(ZoneInfo(schedule.time_zone)).replace(tzinfo=None)
        return {
            "kind": schedule.kind,
            "run_at": run_at,
            "interval_minutes": schedule.interval_minutes,
            "minute": schedule.minute,
            "at_time": schedule.at_time,
            "weekdays": [str(d) for d in schedule.weekdays or []],
            "day_of_month": schedule.day_of_month,
            "time_zone": schedule.time_zone,
            "enabled": schedule.enabled,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        tz_name = data.get("time_zone") or default_zone(data.get("browser_time_zone", ""))
        data["time_zone"] = tz_name
        kind = Kind(data["kind"])
        run_at = data.get("run_at")
        try:
            if kind == Kind.ONCE and run_at is not None:
                # The wall time typed in the dialog, in the schedule's zone.
                naive = timezone.make_naive(run_at) if timezone.is_aware(run_at) else run_at
                run_at = naive.replace(tzinfo=zone(tz_name))
            at_time = data.get("at_time") or None
            if isinstance(at_time, time):  # pragma: no cover - CharField gives str
                at_time = at_time.strftime("%H:%M")
            rec = Recurrence(
                kind=kind,
                time_zone=tz_name,
                run_at=run_at if kind == Kind.ONCE else None,
                interval_minutes=(
                    data.get("interval_minutes") if kind == Kind.EVERY_N_MINUTES else None
                ),
                minute=data.get("minute") if kind == Kind.HOURLY else None,
                at_time=at_time if kind in (Kind.DAILY, Kind.WEEKLY, Kind.MONTHLY) else None,
                weekdays=(
                    frozenset(int(d) for d in data.get("weekdays") or [])
                    if kind == Kind.WEEKLY
                    else frozenset()
                ),
                day_of_month=data.get("day_of_month") if kind == Kind.MONTHLY else None,
            )
            validate(rec, now=self.now)
        except RecurrenceError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, str(exc))
        else:
            self.recurrence = rec
        return data


SEVERITY_FILTER_CHOICES = [("", "Any")] + [(str(s.value), s.label) for s in Severity]
FINISHED_CHOICES = [("", "All"), ("finished", "Finished"), ("unfinished", "Unfinished")]


class LogFilterForm(forms.Form):
    process_type = forms.ChoiceField(label="Type", required=False)
    request_id = forms.CharField(label="Request id", required=False, max_length=36)
    min_severity = forms.ChoiceField(
        label="Minimum severity", required=False, choices=SEVERITY_FILTER_CHOICES
    )
    since = forms.DateTimeField(
        label="From",
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    until = forms.DateTimeField(
        label="To",
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    finished = forms.ChoiceField(label="State", required=False, choices=FINISHED_CHOICES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type_field = self.fields["process_type"]
        assert isinstance(type_field, forms.ChoiceField)
        type_field.choices = [("", "All types"), *registry.choices()]


class ImportConfigForm(forms.Form):
    name = forms.CharField(max_length=200)
    mailbox = forms.ModelChoiceField(queryset=Mailbox.objects.none(), label="Target mailbox")
    path = forms.CharField(
        label="Server path",
        max_length=1024,
        help_text="A file or folder (EML, MSG, MBOX, maildir, PST, ZIP) inside an import folder.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mailbox_field = self.fields["mailbox"]
        assert isinstance(mailbox_field, forms.ModelChoiceField)
        mailbox_field.queryset = Mailbox.objects.all()


class ImportUploadForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Default: the file's name.")
    mailbox = forms.ModelChoiceField(queryset=Mailbox.objects.none(), label="Target mailbox")
    file = forms.FileField(
        label="File", help_text="EML, MSG, MBOX, PST/OST or a ZIP of them.", allow_empty_file=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mailbox_field = self.fields["mailbox"]
        assert isinstance(mailbox_field, forms.ModelChoiceField)
        mailbox_field.queryset = Mailbox.objects.all()
