"""Source configurations. Journal endpoints: where Microsoft 365 sends journal reports."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from mailvault.archive.models import Mailbox
from mailvault.tenancy.models import TenantOwned


def new_endpoint_local_part() -> str:
    """Unguessable: 128 bits, lower case so no mail system changes it."""
    return f"j-{secrets.token_hex(16)}"


class JournalEndpoint(TenantOwned):
    """An SMTP address that accepts journal reports (and plain copies) for a tenant.

    The address is unique across all tenants: the listener finds the tenant by it."""

    name = models.CharField(max_length=200)
    mailbox = models.ForeignKey(
        Mailbox,
        on_delete=models.PROTECT,
        related_name="journal_endpoints",
        help_text="The journal mailbox: every journaled message is filed here.",
    )
    local_part = models.CharField(max_length=64, unique=True, default=new_endpoint_local_part)
    enabled = models.BooleanField(default=True)
    auth_username = models.CharField(max_length=200, blank=True)
    auth_password_hash = models.CharField(max_length=256, blank=True)
    allowed_networks = models.TextField(
        blank=True, help_text="Source networks allowed to deliver (CIDR, one per line); empty: any."
    )
    accepted = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    deferred = models.PositiveBigIntegerField(default=0)
    last_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def smtp_address(self) -> str:
        return f"{self.local_part}@{settings.MAILVAULT_JOURNAL_DOMAIN}"


from mailvault.sources.models_foldersync import (  # noqa: E402 - registers the models
    FolderSynchronization,
    ImapSyncedFolder,
    ImapSyncedMessage,
    SyncedFolder,
)
from mailvault.sources.models_graph import GraphFolderState  # noqa: E402 - registers it
from mailvault.sources.models_profiles import (  # noqa: E402 - registers the models
    ArchivingProfile,
    FolderSyncState,
    Pop3SeenUidl,
)

__all__ = [
    "ArchivingProfile",
    "FolderSyncState",
    "FolderSynchronization",
    "GraphFolderState",
    "ImapSyncedFolder",
    "ImapSyncedMessage",
    "JournalEndpoint",
    "Pop3SeenUidl",
    "SyncedFolder",
]
