"""Legal holds: tenant-wide, per mailbox, or by search query (a case)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.archive.models import Mailbox
from mailvault.tenancy.models import TenantOwned


class LegalHold(TenantOwned):
    class Kind(models.TextChoices):
        TENANT = "tenant", "Whole tenant"
        MAILBOX = "mailbox", "Mailbox"
        QUERY = "query", "Search query (case)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # PROTECT: a mailbox under hold cannot be removed from under it.
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.PROTECT, related_name="legal_holds"
    )
    query = models.CharField(max_length=2000, blank=True)
    reason = models.TextField()
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_name = models.CharField(max_length=150, blank=True)
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.released_at is None

    def describe_scope(self) -> str:
        if self.kind == self.Kind.MAILBOX:
            return f"Mailbox {self.mailbox}"
        if self.kind == self.Kind.QUERY:
            return f"Query: {self.query}"
        return "Every message of the tenant"
