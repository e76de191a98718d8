"""Operator actions on tenants that the operator API offers beyond
:mod:`mailvault.tenancy.provisioning`: quotas, usage, offboarding, guarded status changes.

Operator code: spans tenants, so it enters each tenant with ``tenant_context``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from django.apps import apps
from django.db import models, transaction
from django.db.models import ProtectedError, RestrictedError, Sum

from mailvault.accounts.models import User
from mailvault.archive.models import Mailbox, Message, TenantDataKey
from mailvault.archive.store import destroy_tenant_key
from mailvault.archive.store.tenant_keys import store_root
from mailvault.compliance.models_audit import AuditEntry
from mailvault.search.index import TenantIndex
from mailvault.tenancy import provisioning
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant, TenantOwned

QUOTA_FIELDS = ("max_users", "max_mailboxes", "max_storage_bytes")


class OffboardingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Usage:
    users: int
    mailboxes: int
    messages: int
    stored_bytes: int


def set_quotas(tenant: Tenant, **quotas: int | None) -> Tenant:
    """Set the given quotas (None: unlimited); fields not given stay as they are."""
    unknown = set(quotas) - set(QUOTA_FIELDS)
    if unknown:
        raise ValueError(f"unknown quota {sorted(unknown)}")
    for name, value in quotas.items():
        setattr(tenant, name, value)
    if quotas:
        tenant.save(update_fields=list(quotas))
    return tenant


def usage(tenant: Tenant) -> Usage:
    with tenant_context(tenant):
        return Usage(
            users=User.objects.count(),
            mailboxes=Mailbox.objects.count(),
            messages=Message.objects.count(),
            stored_bytes=int(Message.objects.aggregate(total=Sum("size"))["total"] or 0),
        )


def _purgeable_models() -> list[type[models.Model]]:
    """Every tenant-owned model but the audit log (append-only: it outlives the tenant
    and records the offboarding) and the data key row (it then only says when the key
    was destroyed)."""
    keep = {AuditEntry, TenantDataKey}
    return [m for m in apps.get_models() if issubclass(m, TenantOwned) and m not in keep]


def _purge_rows(tenant: Tenant) -> None:
    """Delete the tenant's rows model by model; a model whose rows are still referenced
    by a protecting foreign key (a journal endpoint's mailbox) waits for a later pass."""
    remaining = _purgeable_models()
    while remaining:
        blocked: list[type[models.Model]] = []
        for model in remaining:
            try:
                with transaction.atomic():
                    model._base_manager.filter(tenant=tenant).delete()
            except (ProtectedError, RestrictedError):
                blocked.append(model)
        if len(blocked) == len(remaining):
            names = ", ".join(m.__name__ for m in blocked)
            raise OffboardingError(f"could not delete the tenant's {names}")
        remaining = blocked


def offboard(tenant: Tenant) -> Tenant:
    """Delete everything a tenant holds, for good; refused while a legal hold is active.

    The data key is destroyed first (crypto-shredding: whatever a crash leaves behind can
    never be read), then the index, the store files and the rows. The tenant row stays,
    marked offboarded, with its audit log; its name stays taken."""
    from mailvault.compliance.deletion import OffboardingRefused, check_offboarding

    if tenant.status == Tenant.Status.OFFBOARDED:
        raise OffboardingError(f"{tenant.name} is offboarded already.")
    with tenant_context(tenant):
        try:
            check_offboarding()
        except OffboardingRefused as exc:
            raise OffboardingError(str(exc)) from exc
    tenant.status = Tenant.Status.SUSPENDED  # nobody signs in while it goes
    tenant.save(update_fields=["status"])
    destroy_tenant_key(tenant)
    TenantIndex.destroy(tenant.pk)
    shutil.rmtree(store_root(tenant), ignore_errors=True)
    with transaction.atomic():
        _purge_rows(tenant)
        tenant.status = Tenant.Status.OFFBOARDED
        tenant.save(update_fields=["status"])
    return tenant


def set_status(tenant: Tenant, status: str) -> Tenant:
    """Suspend or resume; an offboarded tenant stays offboarded."""
    if tenant.status == Tenant.Status.OFFBOARDED:
        raise OffboardingError(f"{tenant.name} is offboarded; it cannot be resumed or suspended.")
    return provisioning.set_status(tenant.name, status)
