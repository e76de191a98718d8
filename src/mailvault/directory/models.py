"""Directory services and what their synchronization links together.

A :class:`DirectoryService` is one configuration (Microsoft Entra ID or LDAP/Active
Directory). Its last known picture of the directory (users, groups, domains as read,
before the constraints) lives in :class:`DirectoryState` together with the delta links of
an Entra tenant, so an incremental run only reads what changed and is applied against a
complete picture. :class:`SyncedObject` links each Mailvault user, group, domain and
archive mailbox to the directory object it came from: an Entra user is the pair
(service tenant id, object id), an LDAP entry its ``entryUUID``; never an address.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from mailvault.accounts.models import Domain, Group, User
from mailvault.archive.models import Mailbox
from mailvault.tenancy.models import TenantOwned


class DirectoryService(TenantOwned):
    class Kind(models.TextChoices):
        ENTRA = "entra", "Microsoft Entra ID"
        LDAP = "ldap", "LDAP / Active Directory"

    class Security(models.TextChoices):
        PLAIN = "plain", "None (ldap://)"
        STARTTLS = "starttls", "StartTLS (ldap://)"
        LDAPS = "ldaps", "LDAPS (ldaps://)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)

    # Microsoft Entra ID: the tenant id confirmed by admin consent and a token.
    entra_tenant_id = models.CharField(max_length=64, blank=True, db_index=True)

    # Constraints (both kinds).
    only_group_names = models.JSONField(
        default=list, blank=True, help_text="Only members of these groups (empty: everybody)."
    )
    enabled_only = models.BooleanField(default=True)
    mailbox_only = models.BooleanField(default=True)
    remove_missing = models.BooleanField(default=True)

    # LDAP / Active Directory.
    ldap_host = models.CharField(max_length=253, blank=True)
    ldap_port = models.PositiveIntegerField(null=True, blank=True)
    ldap_security = models.CharField(
        max_length=16, choices=Security.choices, default=Security.STARTTLS
    )
    ldap_accept_all_certificates = models.BooleanField(default=False)
    ldap_ca_pem = models.TextField(blank=True, help_text="Trusted CA certificates (PEM).")
    ldap_bind_dn = models.CharField(max_length=500, blank=True)
    ldap_bind_password_sealed = models.TextField(blank=True)
    # Or the bind DN and password of a stored Secret (basic credentials), reusable.
    ldap_secret = models.ForeignKey(
        "accounts.Secret",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="directory_services",
    )
    ldap_base_dn = models.CharField(max_length=500, blank=True)
    ldap_user_filter = models.CharField(max_length=1000, blank=True)
    ldap_group_filter = models.CharField(max_length=1000, blank=True)
    ldap_attributes = models.JSONField(default=dict, blank=True)

    last_sync_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="directory_name_unique")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_entra(self) -> bool:
        return self.kind == self.Kind.ENTRA


class DirectoryState(TenantOwned):
    """The directory as last read (JSON), and the delta links that continue from it.

    Written in the same transaction as the changes a run applies, so a run that fails
    leaves both exactly as they were."""

    service = models.OneToOneField(DirectoryService, on_delete=models.CASCADE, related_name="state")
    data = models.JSONField(default=dict)
    users_delta_link = models.TextField(blank=True)
    groups_delta_link = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"state of {self.service_id}"

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.data or {}


class SyncedObject(TenantOwned):
    """One directory object and the Mailvault row it became."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        GROUP = "group", "Group"
        DOMAIN = "domain", "Domain"

    service = models.ForeignKey(
        DirectoryService, on_delete=models.CASCADE, related_name="synced_objects"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    external_id = models.CharField(max_length=200)
    user = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="directory_link"
    )
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="directory_link"
    )
    domain = models.OneToOneField(
        Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="directory_link"
    )
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="directory_links"
    )
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "kind", "external_id"], name="synced_object_once"
            )
        ]
        indexes = [models.Index(fields=["kind", "external_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id}"
