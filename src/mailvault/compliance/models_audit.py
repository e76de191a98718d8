"""Audit log, its hash chains, and the integrity configurations.

Each tenant has one chain (``AuditEntry``); events that belong to no tenant (operator
commands, failed logins for an unknown tenant) go to the operator chain
(``OperatorAuditEntry``). ``AuditChainHead`` holds the last sequence number and hash of
each chain: appends lock that row, so they are serialised per chain on PostgreSQL and the
head also proves that no entry was cut off the end.

Entries are append-only: ``save()`` of an existing row and ``delete()`` raise, and on
PostgreSQL a trigger refuses UPDATE and DELETE (see the migration). Validation
(:mod:`mailvault.compliance.audit.chain`) still detects a row changed behind both.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from mailvault.tenancy.models import Tenant, TenantOwned


class AppendOnlyError(RuntimeError):
    """An audit entry was about to be changed or deleted."""


class ActorType(models.TextChoices):
    USER = "user", "User"
    API = "api", "API"
    CLI = "cli", "CLI"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class AuditRecord(models.Model):
    """The fields every audit entry has, in both chains."""

    seq = models.PositiveBigIntegerField()
    time = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=254, blank=True, default="")
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    activity = models.CharField(max_length=120, db_index=True)
    object = models.CharField(max_length=500, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    success = models.BooleanField(default=True)
    message = models.TextField(blank=True, default="")
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        abstract = True
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.activity} {self.actor}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit entries cannot be deleted.")


class AuditEntry(AuditRecord, TenantOwned):
    class Meta(AuditRecord.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "seq"], name="compliance_audit_tenant_seq")
        ]
        indexes = [models.Index(fields=["tenant", "time"], name="compliance_audit_t_time")]


class OperatorAuditEntry(AuditRecord):
    class Meta(AuditRecord.Meta):
        constraints = [models.UniqueConstraint(fields=["seq"], name="compliance_opaudit_seq")]


class AuditChainHead(models.Model):
    """The end of one chain; ``key`` is ``tenant:<pk>`` or ``operator``. Bookkeeping of
    the audit service only (no tenant scoping: the operator chain has no tenant)."""

    key = models.CharField(max_length=40, unique=True)
    tenant = models.OneToOneField(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"{self.key} @ {self.last_seq}"


class StoreVerification(TenantOwned):
    """The configuration of the ``compliance.verify_store`` process: one per tenant.

    Also keeps the latest result, which the dashboard shows."""

    name = models.CharField(max_length=200, default="Store verification")
    created_at = models.DateTimeField(auto_now_add=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_checked = models.PositiveBigIntegerField(default=0)
    last_mismatches = models.PositiveBigIntegerField(default=0)
    last_ok = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="compliance_one_verification")
        ]

    def __str__(self) -> str:
        return self.name


class ArchiveDigestConfig(TenantOwned):
    """The configuration of the ``compliance.archive_digest`` process: one per tenant."""

    name = models.CharField(max_length=200, default="Daily archive digest")
    created_at = models.DateTimeField(auto_now_add=True)
    last_day = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="compliance_one_digest")]

    def __str__(self) -> str:
        return self.name
