"""API keys: per-tenant keys acting for one user with chosen roles, and operator keys.

Only a SHA-256 of the secret part is stored; the whole key is shown once, at creation.
The prefix (``mvk_1a2b3c4d``) identifies a key in lists and the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from mailvault.tenancy.models import TenantOwned


class ApiKey(TenantOwned):
    name = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The key acts for this user; its roles are at most the user's.",
    )
    roles = models.JSONField(default=list, help_text="Role values the key may use.")
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class OperatorApiKey(models.Model):
    """A key of the service operator: spans tenants, belongs to none."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
