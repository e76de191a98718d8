"""The form of Admin Access > Archiving > Folder Synchronizations."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.directory.models import DirectoryService
from mailvault.sources.foldersync.services import FolderSyncData
from mailvault.sources.models_foldersync import FolderSynchronization

FS = FolderSynchronization


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
        if editing is not None:
            self.fields["type"].disabled = True
            self.fields["type"].initial = editing.type

    def folder_sync_data(self) -> FolderSyncData:
        data = dict(self.cleaned_data)
        if self.editing is not None:
            data["type"] = self.editing.type
        return FolderSyncData(**data)


def initial_for(sync: FolderSynchronization) -> dict[str, Any]:
    return {name: getattr(sync, name) for name in FolderSyncForm.base_fields}
