"""Archiving profiles (Microsoft 365, IMAP, POP3) and their per-folder sync state."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.secrets import Secret
from mailvault.archive.models import Mailbox
from mailvault.directory.models import DirectoryService
from mailvault.tenancy.models import TenantOwned


class ArchivingProfile(TenantOwned):
    """What to archive from where. The type is fixed once the profile exists.

    Multiple mailboxes come from a directory service, whose Entra tenant id is taken
    over when the profile is saved."""

    class Type(models.TextChoices):
        M365 = "m365", "Microsoft 365"
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"

    class Mode(models.TextChoices):
        SINGLE = "single", "Single mailbox"
        MULTIPLE = "multiple", "Multiple mailboxes"

    class Security(models.TextChoices):
        TLS = "tls", "TLS (implicit, port 993 / 995)"
        STARTTLS = "starttls", "STARTTLS"
        NONE = "none", "None (not recommended)"

    class Auth(models.TextChoices):
        PASSWORD = "password", "User name and password (LOGIN / PLAIN)"
        XOAUTH2 = "xoauth2", "OAuth 2.0 (XOAUTH2)"

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=8, choices=Type.choices)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SINGLE)
    directory_service = models.ForeignKey(
        DirectoryService, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entra_tenant_id = models.CharField(max_length=64, blank=True)
    # Server (IMAP / POP3)
    host = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    security = models.CharField(max_length=8, choices=Security.choices, default=Security.TLS)
    auth_method = models.CharField(max_length=8, choices=Auth.choices, default=Auth.PASSWORD)
    tls_verify = models.BooleanField(default=True)
    ca_certificate = models.TextField(
        blank=True, help_text="PEM of a CA (or self-signed server certificate) to trust."
    )
    # Single mailbox
    address = models.CharField(max_length=254, blank=True)
    secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The archive mailbox the messages are filed into.",
    )
    # What to archive
    include_folders = models.TextField(blank=True, help_text="One folder per line; empty: all.")
    exclude_folders = models.TextField(blank=True, help_text="One folder per line.")
    skip_junk_trash = models.BooleanField(default=True)
    older_than = models.DateField(null=True, blank=True)
    newer_than = models.DateField(null=True, blank=True)
    delete_in_source = models.BooleanField(default=False)
    # State
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="archiving_profile_name_unique_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_succeeded(self) -> bool:
        return self.last_success_at is not None

    @staticmethod
    def _lines(text: str) -> list[str]:
        return [line.strip().strip("/") for line in text.splitlines() if line.strip()]

    @property
    def included(self) -> list[str]:
        return self._lines(self.include_folders)

    @property
    def excluded(self) -> list[str]:
        return self._lines(self.exclude_folders)


class FolderSyncState(TenantOwned):
    """How far a profile has archived one folder of one source mailbox (IMAP)."""

    profile = models.ForeignKey(ArchivingProfile, on_delete=models.CASCADE, related_name="folders")
    source_mailbox = models.CharField(max_length=254)
    folder = models.CharField(max_length=1000)  # the decoded name, "/"-separated
    uidvalidity = models.BigIntegerField(default=0)
    last_uid = models.BigIntegerField(default=0)
    highest_modseq = models.BigIntegerField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "source_mailbox", "folder"], name="folder_sync_state_unique"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.profile}: {self.folder} (UIDVALIDITY {self.uidvalidity}, UID {self.last_uid})"
        )


class Pop3SeenUidl(TenantOwned):
    """A POP3 message (by UIDL) that a profile has archived already."""

    profile = models.ForeignKey(ArchivingProfile, on_delete=models.CASCADE, related_name="uidls")
    source_mailbox = models.CharField(max_length=254)
    uidl = models.CharField(max_length=70)
    sha256 = models.CharField(max_length=64)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "source_mailbox", "uidl"], name="pop3_uidl_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.profile}: {self.uidl}"
