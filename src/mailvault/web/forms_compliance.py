"""Forms of the compliance pages (retention policies, legal holds, deletion, export)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from mailvault.archive.models import Folder, Mailbox
from mailvault.compliance import holds
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy, RetentionSettings
from mailvault.search import QuerySyntaxError

if TYPE_CHECKING:
    from mailvault.accounts.models import User


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = [
            "name",
            "enabled",
            "period_days",
            "reference",
            "scope",
            "subject_terms",
            "body_terms",
            "attachment_content_terms",
            "attachment_name_terms",
            "from_terms",
            "recipient_terms",
            "execution_order",
        ]
        labels = {
            "period_days": "Retention period (days)",
            "reference": "Counted from",
            "subject_terms": "Subject contains",
            "body_terms": "Body contains",
            "attachment_content_terms": "Attachment content contains",
            "attachment_name_terms": "Attachment name contains",
            "from_terms": "From",
            "recipient_terms": "To, Cc or Bcc",
        }
        help_texts = {
            "period_days": "Empty: keep forever. Where policies overlap the longest wins.",
            "scope": "A filter's terms are all required (AND); words may use * and ?.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.is_default:
            for name in list(self.fields):
                if name not in ("enabled", "execution_order"):
                    del self.fields[name]


class RetentionSettingsForm(forms.ModelForm):
    class Meta:
        model = RetentionSettings
        fields = ["minimum_retention_days", "four_eyes"]
        labels = {
            "minimum_retention_days": "Minimum retention (days)",
            "four_eyes": "Four-eyes approval for deletions and hold releases",
        }


class LegalHoldForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=LegalHold.Kind.choices, label="Holds")
    mailbox = forms.ModelChoiceField(queryset=Mailbox.objects.none(), required=False)
    query = forms.CharField(
        max_length=2000,
        required=False,
        label="Search query (case)",
        help_text="Held: every message this search finds, in every mailbox, now and later.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mailbox = self.fields["mailbox"]
        assert isinstance(mailbox, forms.ModelChoiceField)
        mailbox.queryset = Mailbox.objects.order_by("primary_address")

    def create_hold(self, actor: User) -> LegalHold | None:
        """Put the valid form's hold in force; None (the reason on the form) if the
        service refused it or its query is malformed. Admin Access and Web Access
        (Compliance) both create holds through here."""
        data = self.cleaned_data
        try:
            return holds.create_hold(
                name=data["name"],
                kind=data["kind"],
                reason=data["reason"],
                actor=actor,
                mailbox=data["mailbox"],
                query=data["query"],
            )
        except (holds.HoldError, QuerySyntaxError) as exc:
            self.add_error(None, str(exc))
            return None


class ReleaseForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Reason for the release")


class DeleteForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Reason for the deletion")


class ExportForm(forms.Form):
    source = forms.ChoiceField(choices=ExportJob.Source.choices)
    format = forms.ChoiceField(choices=ExportJob.Format.choices)
    query = forms.CharField(max_length=2000, required=False)
    mailbox = forms.ModelChoiceField(queryset=Mailbox.objects.none(), required=False)
    folder = forms.ModelChoiceField(queryset=Folder.objects.none(), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mailbox, folder = self.fields["mailbox"], self.fields["folder"]
        assert isinstance(mailbox, forms.ModelChoiceField)
        assert isinstance(folder, forms.ModelChoiceField)
        mailbox.queryset = Mailbox.objects.order_by("primary_address")
        folder.queryset = Folder.objects.select_related("mailbox").order_by(
            "mailbox__primary_address", "path"
        )
