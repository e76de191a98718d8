"""Forms of the Auditor's pages: the audit log filter and the CSV export."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from mailvault.compliance.audit.search import MAX_EXPORT_DAYS, activities

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
_DATETIME_FORMATS = [DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%d"]
OUTCOME_CHOICES = [("", "Any outcome"), ("ok", "Succeeded"), ("failed", "Failed or denied")]


def _when(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )


class AuditFilterForm(forms.Form):
    since = _when("From")
    until = _when("To")
    activity = forms.ChoiceField(label="Activity", required=False)
    actor = forms.CharField(label="Actor", required=False, max_length=254)
    q = forms.CharField(label="Text", required=False, max_length=200)
    outcome = forms.ChoiceField(label="Outcome", required=False, choices=OUTCOME_CHOICES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["activity"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "All activities"), *((a, a) for a in activities())]


class AuditExportForm(forms.Form):
    first = forms.DateField(label="First day (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label="Last day (UTC)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("first"), data.get("last")
        if first and last:
            if last < first:
                raise forms.ValidationError("The last day is before the first.")
            if (last - first) >= timedelta(days=MAX_EXPORT_DAYS):
                raise forms.ValidationError(f"Export at most {MAX_EXPORT_DAYS} days at once.")
        return data

    @staticmethod
    def initial_days() -> dict[str, Any]:
        today = timezone.now().date()
        return {"first": today - timedelta(days=6), "last": today}
