"""The one scoping mechanism: no tenant, no rows; another tenant's rows stay out of sight."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from factories import TenantWorld
from mailvault.accounts.models import Domain, Group, GroupRole, User
from mailvault.archive.models import Mailbox
from mailvault.tenancy.context import (
    NoActiveTenant,
    current_tenant_or_none,
    tenant_context,
)

pytestmark = pytest.mark.django_db

SCOPED_MODELS = [User, Group, GroupRole, Domain, Mailbox]


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=lambda m: m.__name__)
def test_no_active_tenant_raises(world: list[TenantWorld], model: type) -> None:
    assert current_tenant_or_none() is None
    with pytest.raises(NoActiveTenant):
        list(model.objects.all())
    with pytest.raises(NoActiveTenant):
        model.objects.filter(pk=1).exists()


def test_saving_without_tenant_raises(tenant_a: TenantWorld) -> None:
    with pytest.raises(NoActiveTenant):
        Group(name="Orphans").save()
    assert not Group.unscoped.filter(name="Orphans").exists()


def test_saving_row_of_other_tenant_raises(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    group_b = tenant_b.reader_group
    with tenant_context(tenant_a.tenant):
        group_b.name = "Hijacked"
        with pytest.raises(PermissionError):
            group_b.save()
        user_b = tenant_b.member
        user_b.display_name = "Hijacked"
        with pytest.raises(PermissionError):
            user_b.save()
    assert Group.unscoped.get(pk=group_b.pk).name == "Readers"
    assert User.unscoped.get(pk=user_b.pk).display_name == "Member"


def test_new_row_takes_active_tenant(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        group = Group.objects.create(name="Fresh")
    assert group.tenant_id == tenant_a.tenant.pk


def test_objects_of_other_tenants_invisible(world: list[TenantWorld]) -> None:
    a, b, c = world
    with tenant_context(a.tenant):
        assert set(User.objects.values_list("pk", flat=True)) == {a.owner.pk, a.member.pk}
        assert not User.objects.filter(pk=b.member.pk).exists()
        assert not Group.objects.filter(pk=b.reader_group.pk).exists()
        assert not Domain.objects.filter(pk=c.manual_domain.pk).exists()
        assert not Mailbox.objects.filter(pk=b.mailbox.pk).exists()
        assert {d.name for d in Domain.objects.all()} == {a.name, a.manual_domain.name}
        # Relations are scoped as well: B's member is no member of anything seen from A.
        assert not Group.objects.filter(members=b.member).exists()
    # Operator code sees every tenant through ``unscoped``.
    assert User.unscoped.filter(pk__in=[a.member.pk, b.member.pk, c.member.pk]).count() == 3


def test_context_is_restored_after_block(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        with tenant_context(tenant_b.tenant):
            assert User.objects.filter(pk=tenant_b.member.pk).exists()
        assert not User.objects.filter(pk=tenant_b.member.pk).exists()
    assert current_tenant_or_none() is None


def test_outsider_cannot_reach_objects_by_query_parameter(
    tenant_a: TenantWorld, outsider_client_a: Client
) -> None:
    """Ids in query strings, not only in URL paths, stay within the tenant."""
    home = outsider_client_a.get("/webaccess/")
    assert home.status_code == 200
    assert tenant_a.mailbox.primary_address not in home.content.decode()
    response = outsider_client_a.get("/webaccess/", {"mailbox": tenant_a.mailbox.pk})
    assert response.status_code == 404
    response = outsider_client_a.get(f"/webaccess/messages/{tenant_a.message.pk}/")
    assert response.status_code == 404


def test_each_tenant_sees_only_itself(world: list[TenantWorld], client_as: Callable) -> None:
    for own in world:
        body = client_as(own.owner).get("/adminaccess/users/").content.decode()
        for other in world:
            assert (other.member.username in body) == (other is own)
