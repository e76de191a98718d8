"""Archive mailboxes, their folders, and the messages filed into them.

A message is stored once per tenant (keyed by the SHA-256 of its original bytes, which
live in the blob store); ``Placement`` rows file it into any number of mailboxes and
folders. The message's metadata here is what the pipeline could read; the original bytes
stay the truth.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.models import Group, User
from mailvault.tenancy.models import TenantOwned


class Mailbox(TenantOwned):
    class Kind(models.TextChoices):
        USER = "user", "User mailbox"
        SHARED = "shared", "Shared mailbox"
        JOURNAL = "journal", "Journal mailbox"

    primary_address = models.CharField(max_length=254)
    display_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.USER)
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_mailboxes"
    )
    shared_with = models.ManyToManyField(Group, blank=True, related_name="shared_mailboxes")
    # Set by a directory synchronization; hand-made mailboxes have none.
    directory_service_name = models.CharField(max_length=200, blank=True)
    last_import_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["primary_address"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "primary_address"], name="mailbox_address_unique_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.primary_address

    @property
    def is_synchronized(self) -> bool:
        return bool(self.directory_service_name)


class MailboxAddress(TenantOwned):
    """Every address of a mailbox, the primary one included, for filing by address."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="addresses")
    address = models.CharField(max_length=254)
    is_primary = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_primary", "address"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "address"], name="mailbox_address_taken_once_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.address


class Folder(TenantOwned):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=1024, help_text="Full path, segments joined by '/'.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "path"], name="folder_path_unique")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox}:{self.path}"


class Message(TenantOwned):
    class Source(models.TextChoices):
        SMTP = "smtp", "Journaling (SMTP)"
        GRAPH = "graph", "Microsoft 365"
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"
        FILE = "file", "File import"

    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    message_id = models.CharField(max_length=998, blank=True)
    date = models.DateTimeField(null=True, blank=True)
    from_address = models.CharField(max_length=254, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    envelope_from = models.CharField(max_length=254, blank=True)
    envelope_recipients = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    attachment_names = models.JSONField(default=list, blank=True)
    has_attachments = models.BooleanField(default=False)
    archived_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices)
    unparseable = models.BooleanField(default=False)
    parse_problem = models.TextField(blank=True)
    indexed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-date"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sha256"], name="message_stored_once")
        ]
        indexes = [models.Index(fields=["tenant", "indexed"])]

    def __str__(self) -> str:
        return f"{self.subject[:60]} <{self.sha256[:12]}>"


class Placement(TenantOwned):
    """A message filed in one folder of one mailbox."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="placements")
    # No one-column indexes for these two: the (mailbox, …) indexes and the (folder,
    # message) constraint below start with them. Every index costs each insert of a bulk
    # import, and placements are the most numerous rows.
    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, related_name="placements", db_index=False
    )
    folder = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="placements", db_index=False
    )
    source_ref = models.CharField(
        max_length=512, blank=True, help_text="The source's own id (Graph id, IMAP UID, path)."
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["folder", "message"], name="placement_once_per_folder")
        ]
        indexes = [
            models.Index(fields=["mailbox", "message"]),
            # Resumed imports and source syncs look placements up by the source's own id.
            models.Index(fields=["mailbox", "source_ref"]),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} in {self.folder_id}"


class TenantDataKey(TenantOwned):
    """The tenant's data key for the blob store, wrapped by the master key.

    Destroying it (crypto-shredding) empties ``wrapped_key`` and sets ``destroyed_at``;
    the row stays so the archive is refused for good rather than given a new key.
    """

    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="one_data_key_per_tenant")]

    def __str__(self) -> str:
        state = "destroyed" if self.destroyed_at else "active"
        return f"data key of tenant {self.tenant_id} ({state})"
