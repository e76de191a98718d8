"""The form of Admin Access > Archiving > Archiving Profiles."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.accounts.secrets import Secret
from mailvault.archive.models import Mailbox
from mailvault.directory.models import DirectoryService
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles.services import ProfileData

P = ArchivingProfile


class _MailboxField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.primary_address)


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=P.Type.choices, help_text="Fixed after creation.")
    mode = forms.ChoiceField(choices=P.Mode.choices, initial=P.Mode.SINGLE)
    directory_service = forms.ModelChoiceField(
        queryset=DirectoryService.objects.none(),
        required=False,
        help_text="Multiple mailboxes: the directory service that lists them.",
    )
    host = forms.CharField(max_length=253, required=False, label="Server")
    port = forms.IntegerField(
        min_value=1, max_value=65535, required=False, help_text="Empty: the standard port."
    )
    security = forms.ChoiceField(choices=P.Security.choices, initial=P.Security.TLS)
    auth_method = forms.ChoiceField(
        choices=P.Auth.choices, initial=P.Auth.PASSWORD, label="Authentication"
    )
    tls_verify = forms.BooleanField(
        required=False, initial=True, label="Verify the server's certificate"
    )
    ca_certificate = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Trusted certificate (PEM, optional)",
    )
    address = forms.CharField(max_length=254, required=False, label="Mailbox address")
    secret = forms.ModelChoiceField(
        queryset=Secret.objects.none(), required=False, help_text="The mailbox's credentials."
    )
    mailbox = _MailboxField(
        queryset=Mailbox.objects.none(),
        required=False,
        label="Archive mailbox",
        help_text="Empty: the archive mailbox with the same address.",
    )
    include_folders = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One folder per line (subfolders included); empty: all folders.",
    )
    exclude_folders = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line."
    )
    skip_junk_trash = forms.BooleanField(
        required=False, initial=True, label="Skip junk e-mail and deleted items"
    )
    newer_than = forms.DateField(
        required=False,
        label="Only messages newer than",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    older_than = forms.DateField(
        required=False,
        label="Only messages older than",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    delete_in_source = forms.BooleanField(
        required=False,
        label="Delete in source mailbox",
        help_text="Only after a successful run, only verified archive copies, never flagged "
        "messages, never under a legal hold.",
    )

    def __init__(self, *args: Any, editing: ArchivingProfile | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.fields["directory_service"].queryset = DirectoryService.objects.all()  # type: ignore[attr-defined]
        self.fields["secret"].queryset = Secret.objects.all()  # type: ignore[attr-defined]
        self.fields["mailbox"].queryset = Mailbox.objects.all()  # type: ignore[attr-defined]
        if editing is not None:
            self.fields["type"].disabled = True
            self.fields["type"].initial = editing.type

    def profile_data(self) -> ProfileData:
        data = dict(self.cleaned_data)
        if self.editing is not None:
            data["type"] = self.editing.type
        return ProfileData(**data)


def initial_for(profile: ArchivingProfile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in ProfileForm.base_fields}
