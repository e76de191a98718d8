"""Operator actions on tenants: provision, suspend, resume."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from mailvault.accounts import services as accounts
from mailvault.accounts.models import Domain, Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

ADMIN_GROUP_NAME = "Administrators"


class ProvisioningError(ValueError):
    pass


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin_username: str
    admin_password: str


def provision_tenant(name: str, display_name: str = "") -> ProvisionedTenant:
    """Create a tenant with its default domain, an Administrators group holding Admin, and
    a first admin ``admin@<name>`` who must change the generated password at first login."""
    name = name.strip().casefold()
    tenant = Tenant(name=name, display_name=display_name or name)
    if Tenant.objects.filter(name=name).exists():
        raise ProvisioningError(f"A tenant named {name} exists already.")
    try:
        tenant.full_clean()
    except ValidationError as exc:
        raise ProvisioningError("; ".join(exc.messages)) from exc
    if Domain.unscoped.filter(name=name).exists():
        raise ProvisioningError(f"{name} is already a domain of another tenant.")
    with transaction.atomic():
        tenant.save()
        with tenant_context(tenant):
            Domain.objects.create(name=name, kind=Domain.Kind.DEFAULT, verified=True)
            group = Group.objects.create(
                name=ADMIN_GROUP_NAME, description="Provisioned administrators"
            )
            GroupRole.objects.create(group=group, role=Role.ADMIN)
            admin, password = accounts.create_user(
                "admin", name, display_name="Administrator", groups=[group]
            )
            admin.is_provisioned_admin = True
            admin.save(update_fields=["is_provisioned_admin"])
    return ProvisionedTenant(tenant, admin.username, password)


def set_status(name: str, status: str) -> Tenant:
    tenant = Tenant.objects.filter(name=name).first()
    if tenant is None:
        raise ProvisioningError(f"No tenant named {name!r}.")
    tenant.status = status
    tenant.save(update_fields=["status"])
    return tenant


def admin_user(tenant: Tenant) -> User | None:
    return User.unscoped.filter(tenant=tenant, is_provisioned_admin=True).first()
