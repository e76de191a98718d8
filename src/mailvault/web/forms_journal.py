"""Forms of Admin Access > Archiving > Journal Endpoints."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Case, IntegerField, Value, When

from mailvault.archive.models import Mailbox
from mailvault.sources.journal_endpoints import NAME_MAX
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import current_tenant


def mailbox_label(mailbox: Mailbox) -> str:
    if mailbox.display_name:
        return f"{mailbox.primary_address} ({mailbox.display_name})"
    return mailbox.primary_address


def mailbox_choices() -> list[Any]:
    """The tenant's mailboxes for the picker, journal mailboxes first (in their own group)."""
    mailboxes = Mailbox.objects.annotate(
        journal_first=Case(
            When(kind=Mailbox.Kind.JOURNAL, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
    ).order_by("journal_first", "primary_address")
    journal: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for m in mailboxes:
        (journal if m.kind == Mailbox.Kind.JOURNAL else other).append((str(m.pk), mailbox_label(m)))
    choices: list[Any] = [("", "Select a mailbox")]
    if journal:
        choices.append(("Journal mailboxes", journal))
    if other:
        choices.append(("Other mailboxes", other))
    return choices


class JournalEndpointForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX, label="Name")
    mailbox = forms.ChoiceField(
        label="Journal mailbox",
        help_text="Every journaled message is filed here (and into the mailboxes of its "
        "senders and recipients). Best a mailbox used for journaling only.",
    )
    auth_username = forms.CharField(
        max_length=200, required=False, label="SMTP AUTH username", help_text="Optional."
    )
    auth_password = forms.CharField(
        max_length=200,
        required=False,
        label="SMTP AUTH password",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    remove_auth = forms.BooleanField(required=False, label="Remove SMTP authentication")
    allowed_networks = forms.CharField(
        required=False,
        label="Allowed networks",
        help_text="Optional. One address or CIDR network per line (e.g. 40.92.0.0/15); "
        "mail from anywhere else is refused. Empty: any sender network.",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, editing: JournalEndpoint | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mailbox_field = self.fields["mailbox"]
        assert isinstance(mailbox_field, forms.ChoiceField)
        mailbox_field.choices = mailbox_choices()
        self.editing = editing
        password = self.fields["auth_password"]
        if editing is not None and editing.auth_password_hash:
            password.help_text = "A password is set. Leave empty to keep it."
        else:
            password.help_text = "Optional; needed with a username."
            del self.fields["remove_auth"]

    def clean_mailbox(self) -> Mailbox:
        value = self.cleaned_data["mailbox"]
        mailbox = Mailbox.objects.filter(pk=int(value)).first() if value.isdigit() else None
        if mailbox is None:
            raise forms.ValidationError("Select a mailbox of this tenant.")
        return mailbox


class JournalMailboxForm(forms.Form):
    """The "+" beside the mailbox picker: a new Journal mailbox. Its fields carry a prefix
    because they sit inside the endpoint form."""

    prefix = "newmailbox"

    address = forms.CharField(max_length=254, label="Mailbox address")
    display_name = forms.CharField(max_length=200, required=False, label="Mailbox name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        example = f"journal@{current_tenant().default_domain}"
        self.fields["address"].help_text = f"In one of your domains, e.g. {example}."
        self.fields["address"].widget.attrs["placeholder"] = example
