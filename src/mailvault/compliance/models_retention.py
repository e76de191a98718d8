"""Retention policies, the tenant's retention settings, and purges left to finish.

A message is deleted by retention only when it has expired under *every* active policy
that covers it (so the longest retention wins), never while a legal hold covers it, and
never before the tenant's minimum retention (see :mod:`mailvault.compliance.deletion`).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.tenancy.models import TenantOwned

DEFAULT_POLICY_NAME = "Default: keep forever"


class RetentionSettings(TenantOwned):
    """One row per tenant: the floor under every deletion, four-eyes, the run's anchor.

    It is also the configuration the ``compliance.retention`` process type is scheduled on.
    """

    minimum_retention_days = models.PositiveIntegerField(
        default=0,
        help_text="Nothing is deleted (by anyone or anything) until it has been archived "
        "this many days.",
    )
    four_eyes = models.BooleanField(
        default=False,
        help_text="Deletions and hold releases by Compliance users wait for a second "
        "Compliance user's approval.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="one_retention_settings_per_tenant")
        ]

    def __str__(self) -> str:
        return "Retention policies"


class RetentionPolicy(TenantOwned):
    class Reference(models.TextChoices):
        ARCHIVE_DATE = "archive", "Archive date"
        MESSAGE_DATE = "message", "Message date"

    class Scope(models.TextChoices):
        ALL = "all", "All messages"
        FILTERED = "filtered", "Messages matching the filter"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, editable=False)
    # None: keep forever (the default policy).
    period_days = models.PositiveIntegerField(null=True, blank=True)
    reference = models.CharField(
        max_length=16, choices=Reference.choices, default=Reference.ARCHIVE_DATE
    )
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    subject_terms = models.CharField(max_length=500, blank=True)
    body_terms = models.CharField(max_length=500, blank=True)
    attachment_content_terms = models.CharField(max_length=500, blank=True)
    attachment_name_terms = models.CharField(max_length=500, blank=True)
    from_terms = models.CharField(max_length=500, blank=True)
    recipient_terms = models.CharField(max_length=500, blank=True, help_text="To, Cc or Bcc.")
    execution_order = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["execution_order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="retention_policy_name_unique"),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(is_default=True),
                name="one_default_retention_policy",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def keeps_forever(self) -> bool:
        return self.period_days is None

    def describe_period(self) -> str:
        if self.period_days is None:
            return "forever"
        return f"{self.period_days} day{'s' if self.period_days != 1 else ''}"


class PendingPurge(TenantOwned):
    """A deleted message whose index document and stored bytes are still to be removed.

    Written in the same transaction as the deletion of the Message row, removed once the
    index and store no longer hold it: a crash in between is finished by the next purge.
    """

    message_pk = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "deleted_at"])]

    def __str__(self) -> str:
        return f"purge of message {self.message_pk}"


class DeletionLogEntry(TenantOwned):
    """What compliance deletion and retention removed (kept beside the audit log, which
    records the action; this answers "where did message X go?")."""

    message_pk = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    subject = models.TextField(blank=True)
    purpose = models.CharField(max_length=32)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-deleted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.purpose}: message {self.message_pk}"


class ApprovalRequest(TenantOwned):
    """Four-eyes: a deletion or hold release waiting for a second Compliance user."""

    class Kind(models.TextChoices):
        DELETE = "delete", "Delete messages"
        RELEASE_HOLD = "release_hold", "Release legal hold"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved and carried out"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Approved, refused by the deletion guard"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    message_ids = models.JSONField(default=list, blank=True)
    hold = models.ForeignKey(
        "compliance.LegalHold", null=True, blank=True, on_delete=models.CASCADE
    )
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(max_length=150)
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.requested_by_name} ({self.status})"
