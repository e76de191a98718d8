"""Compliance exports: a search result, folder or mailbox written to ZIP (EML) or MBOX."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.archive.models import Folder, Mailbox
from mailvault.tenancy.models import TenantOwned


class ExportJob(TenantOwned):
    class Source(models.TextChoices):
        SEARCH = "search", "Search result"
        FOLDER = "folder", "Folder"
        MAILBOX = "mailbox", "Mailbox"

    class Format(models.TextChoices):
        ZIP = "zip", "ZIP of EML files"
        MBOX = "mbox", "MBOX"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    requested_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    query = models.CharField(max_length=2000, blank=True)
    mailbox = models.ForeignKey(Mailbox, null=True, blank=True, on_delete=models.SET_NULL)
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.ZIP)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    file_name = models.CharField(max_length=300, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.get_source_display()}, {self.format})"

    def describe(self) -> str:
        if self.source == self.Source.SEARCH:
            return f"Search: {self.query}"
        if self.source == self.Source.FOLDER and self.folder is not None:
            return f"Folder {self.folder}"
        return f"Mailbox {self.mailbox}" if self.mailbox else str(self)
