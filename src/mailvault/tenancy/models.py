"""Tenants, and the one mechanism that scopes every tenant-owned row.

A model that belongs to a tenant inherits :class:`TenantOwned`. Its default manager,
``objects``, only ever sees the rows of the active tenant (see :mod:`.context`) and raises
when no tenant is active, so a forgotten filter cannot leak another tenant's data: it
fails closed. ``save()`` fills in the active tenant and refuses a row of another one.
Operator code that deliberately spans tenants uses ``Model.unscoped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from django.core.validators import RegexValidator
from django.db import models

from mailvault.tenancy.context import current_tenant

TENANT_NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        # Data deleted for good; the row and the audit log remain (see api/operator.py).
        OFFBOARDED = "offboarded", "Offboarded"

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                TENANT_NAME_RE,
                "A tenant name is 1-63 lower-case letters, digits and inner hyphens.",
            )
        ],
        help_text="Also the tenant's default domain, which identifies it at login.",
    )
    display_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    max_users = models.PositiveIntegerField(null=True, blank=True)
    max_mailboxes = models.PositiveIntegerField(null=True, blank=True)
    max_storage_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def default_domain(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


_M = TypeVar("_M", bound=models.Model)


def _claim_for_active_tenant(obj: models.Model) -> None:
    """Give a new row the active tenant; refuse a row that belongs to another one."""
    active = current_tenant()
    tenant_id = getattr(obj, "tenant_id", None)
    if tenant_id is None:
        obj.tenant = active  # type: ignore[attr-defined]
    elif tenant_id != active.pk:
        raise PermissionError(
            f"{type(obj).__name__} of tenant {tenant_id} written while tenant {active.pk} is active"
        )


class TenantScopedQuerySet(models.QuerySet[_M]):
    def bulk_create(self, objs: Iterable[_M], *args: Any, **kwargs: Any) -> list[_M]:
        objs = list(objs)
        for obj in objs:
            _claim_for_active_tenant(obj)
        return super().bulk_create(objs, *args, **kwargs)


class TenantScopedManager(models.Manager[_M]):
    """The default manager of tenant-owned models: the active tenant's rows only."""

    def get_queryset(self) -> models.QuerySet[_M]:
        return TenantScopedQuerySet(self.model, using=self._db).filter(tenant=current_tenant())

    def none(self) -> models.QuerySet[_M]:
        """The empty queryset needs no tenant (forms use it as a placeholder at import)."""
        return TenantScopedQuerySet(self.model, using=self._db).none()


class TenantOwned(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", editable=False)

    objects: ClassVar[TenantScopedManager[Any]] = TenantScopedManager()
    unscoped: ClassVar[models.Manager[Any]] = models.Manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        _claim_for_active_tenant(self)
        super().save(*args, **kwargs)
