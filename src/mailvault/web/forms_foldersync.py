"""The form of Admin Access > Archiving > Folder Synchronizations."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.accounts.secrets import Secret
from mailvault.directory.models import DirectoryService
from mailvault.sources.foldersync.services import FolderSyncData
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile

FS = FolderSynchronization
P = ArchivingProfile


class FolderSyncForm(forms.Form):
    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=FS.Type.choices, help_text="Fixed after creation.")
    mode = forms.ChoiceField(choices=FS.Mode.choices, initial=FS.Mode.MULTIPLE)
    directory_service = forms.ModelChoiceField(
        queryset=DirectoryService.objects.none(),
        required=False,
        help_text="Multiple mailboxes: the directory service that lists them. Its tenant id "
        "is taken over.",
    )
    address = forms.CharField(
        max_length=254, required=False, label="Mailbox address", help_text="Single mailbox."
    )
    # IMAP: the server, as in an IMAP archiving profile
    host = forms.CharField(max_length=253, required=False, label="Server")
    port = forms.IntegerField(
        min_value=1, max_value=65535, required=False, help_text="Empty: the standard port."
    )
    security = forms.ChoiceField(choices=P.Security.choices, initial=P.Security.TLS, required=False)
    auth_method = forms.ChoiceField(
        choices=P.Auth.choices, initial=P.Auth.PASSWORD, label="Authentication", required=False
    )
    tls_verify = forms.BooleanField(
        required=False, initial=True, label="Verify the server's certificate"
    )
    ca_certificate = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Trusted certificate (PEM, optional)",
    )
    secret = forms.ModelChoiceField(
        queryset=Secret.objects.none(), required=False, help_text="The mailbox's credentials."
    )
    skip_junk_trash = forms.BooleanField(
        required=False, initial=True, label="Skip junk e-mail and deleted items"
    )
    delete_in_mailbox = forms.ChoiceField(
        choices=FS.Delete.choices,
        initial=FS.Delete.NEVER,
        label="Delete in Mailbox",
        help_text="Only after a successful run, only verified archive copies, never flagged "
        "messages, never under a legal hold.",
    )
    delete_older_than_days = forms.IntegerField(
        min_value=1, required=False, label="Older than (days)"
    )
    synchronize_users = forms.BooleanField(
        required=False,
        label="Synchronize Users",
        help_text="Run the directory service synchronization first (no separate schedule "
        "needed for it).",
    )

    def __init__(
        self, *args: Any, editing: FolderSynchronization | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        field = self.fields["directory_service"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = DirectoryService.objects.all()
        secret = self.fields["secret"]
        assert isinstance(secret, forms.ModelChoiceField)
        secret.queryset = Secret.objects.all()
        if editing is not None:
            self.fields["type"].disabled = True
            self.fields["type"].initial = editing.type

    def folder_sync_data(self) -> FolderSyncData:
        data = dict(self.cleaned_data)
        if self.editing is not None:
            data["type"] = self.editing.type
        data["security"] = data.get("security") or P.Security.TLS
        data["auth_method"] = data.get("auth_method") or P.Auth.PASSWORD
        data["host"] = data.get("host") or ""
        data["ca_certificate"] = data.get("ca_certificate") or ""
        return FolderSyncData(**data)


def initial_for(sync: FolderSynchronization) -> dict[str, Any]:
    return {name: getattr(sync, name) for name in FolderSyncForm.base_fields}
