"""Where Microsoft 365 archiving stands in each folder of each source mailbox."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.tenancy.models import TenantOwned


class GraphFolderState(TenantOwned):
    """The messages delta link of one mail folder (by its immutable id) of one user, for
    one archiving profile. Saved only after every message of that delta round was
    archived, so a crashed run resumes from the previous round and deduplicates."""

    profile = models.ForeignKey(
        "sources.ArchivingProfile", on_delete=models.CASCADE, related_name="graph_folders"
    )
    user_id = models.CharField(max_length=200)  # the Entra object id (or the address)
    folder_id = models.CharField(max_length=500)
    folder_path = models.CharField(max_length=1000, blank=True)
    delta_link = models.TextField(blank=True)
    message_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "user_id", "folder_id"], name="graph_folder_state_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.folder_path or self.folder_id}"
