"""Folder synchronizations: mirror the folders of source mailboxes into the archive."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.secrets import Secret
from mailvault.archive.models import Mailbox
from mailvault.directory.models import DirectoryService
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.models import TenantOwned


class FolderSynchronization(TenantOwned):
    """Which source mailboxes to mirror and what to delete there afterwards.

    The type is fixed once it exists. Journal mailboxes are never synchronized: their
    folders are the journal's, not a person's."""

    class Type(models.TextChoices):
        M365 = "m365", "Microsoft 365"
        IMAP = "imap", "IMAP"

    class Mode(models.TextChoices):
        SINGLE = "single", "Single mailbox"
        MULTIPLE = "multiple", "Multiple mailboxes"

    class Delete(models.TextChoices):
        NEVER = "never", "Never delete"
        ARCHIVED = "archived", "Delete after archived"
        OLDER = "older", "Delete when older than N days"

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=8, choices=Type.choices)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.MULTIPLE)
    directory_service = models.ForeignKey(
        DirectoryService, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entra_tenant_id = models.CharField(max_length=64, blank=True)
    address = models.CharField(max_length=254, blank=True)  # single mailbox
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    delete_in_mailbox = models.CharField(max_length=8, choices=Delete.choices, default=Delete.NEVER)
    delete_older_than_days = models.PositiveIntegerField(null=True, blank=True)
    synchronize_users = models.BooleanField(
        default=False, help_text="Run the directory synchronization first."
    )
    # IMAP server (single mailbox), as in an IMAP archiving profile
    host = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    security = models.CharField(
        max_length=8,
        choices=ArchivingProfile.Security.choices,
        default=ArchivingProfile.Security.TLS,
    )
    auth_method = models.CharField(
        max_length=8, choices=ArchivingProfile.Auth.choices, default=ArchivingProfile.Auth.PASSWORD
    )
    tls_verify = models.BooleanField(default=True)
    ca_certificate = models.TextField(
        blank=True, help_text="PEM of a CA (or self-signed server certificate) to trust."
    )
    secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    skip_junk_trash = models.BooleanField(default=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SyncedFolder(TenantOwned):
    """One source folder (by its immutable id) of one user: its path last time, and the
    delta link to continue from (saved once every change of that round is applied)."""

    sync = models.ForeignKey(
        FolderSynchronization, on_delete=models.CASCADE, related_name="folders"
    )
    user_id = models.CharField(max_length=200)
    folder_id = models.CharField(max_length=500)
    path = models.CharField(max_length=1000, blank=True)
    delta_link = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sync", "user_id", "folder_id"], name="synced_folder_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.path or self.folder_id}"


class ImapSyncedFolder(TenantOwned):
    """One folder of an IMAP folder synchronization: its server name and mirrored path,
    and what the last run saw (UIDVALIDITY, UIDNEXT, message count, HIGHESTMODSEQ), so an
    unchanged folder is skipped without listing its UIDs."""

    sync = models.ForeignKey(
        FolderSynchronization, on_delete=models.CASCADE, related_name="imap_folders"
    )
    name = models.CharField(max_length=1000)  # the server's (decoded) name
    path = models.CharField(max_length=1000)  # the mirrored archive path
    uidvalidity = models.BigIntegerField(default=0)
    uidnext = models.BigIntegerField(null=True, blank=True)
    exists = models.PositiveIntegerField(default=0)
    highest_modseq = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sync", "path"], name="imap_synced_folder_unique")
        ]

    def __str__(self) -> str:
        return f"{self.sync}: {self.path} (UIDVALIDITY {self.uidvalidity})"


class ImapSyncedMessage(TenantOwned):
    """A message (by UID under a UIDVALIDITY) that sits in a synchronized IMAP folder and
    is filed there in the archive; its content hash finds it again when it moves."""

    folder = models.ForeignKey(ImapSyncedFolder, on_delete=models.CASCADE, related_name="uids")
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["folder", "uidvalidity", "uid"], name="imap_synced_message_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.folder.path}: {self.uidvalidity}/{self.uid}"
