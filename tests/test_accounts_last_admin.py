"""The last-admin guard, from every path: services first, then the Admin Access pages.

Each tenant of the fixture has exactly one Admin (its owner, in "Administrators"). Every
change that would leave no active Admin is refused with LastAdminError and changes
nothing; the same change passes once a second Admin exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from mailvault.accounts import services
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

LAST_ADMIN_TEXT = "without any active user holding the Admin role"


def _state(world: TenantWorld) -> dict[str, Any]:
    """What the guard protects, read fresh from the database."""
    with tenant_context(world.tenant):
        owner = User.objects.filter(pk=world.owner.pk).first()
        group = Group.objects.filter(pk=world.admin_group.pk).first()
        return {
            "owner_exists": owner is not None,
            "owner_active": owner.is_active if owner else None,
            "owner_groups": sorted(owner.user_groups.values_list("pk", flat=True))
            if owner
            else None,
            "group_exists": group is not None,
            "group_roles": sorted(group.role_set) if group else None,
            "group_members": sorted(group.members.values_list("pk", flat=True)) if group else None,
            "admins": sorted(u.pk for u in services.active_admins()),
        }


def _fresh(world: TenantWorld) -> tuple[User, Group]:
    return (
        User.objects.get(pk=world.owner.pk),
        Group.objects.get(pk=world.admin_group.pk),
    )


# Each path: a change that takes Admin away from the only admin (the owner).
PATHS: dict[str, Callable[[User, Group], None]] = {
    "delete_user": lambda owner, group: services.delete_user(owner),
    "disable_user": lambda owner, group: services.update_user(
        owner, display_name=owner.display_name, is_active=False, groups=[group]
    ),
    "update_user_removing_group": lambda owner, group: services.update_user(
        owner, display_name=owner.display_name, is_active=True, groups=[]
    ),
    "delete_group": lambda owner, group: services.delete_group(group),
    "remove_role": lambda owner, group: services.set_group_roles(group, [Role.READER]),
    "remove_all_roles": lambda owner, group: services.set_group_roles(group, []),
    "remove_member": lambda owner, group: services.remove_member(group, owner),
    "update_group_members": lambda owner, group: services.update_group(
        group, name=group.name, description=group.description, members=[]
    ),
}


@pytest.mark.parametrize("path", PATHS)
def test_service_refuses_removing_last_admin(tenant_a: TenantWorld, path: str) -> None:
    before = _state(tenant_a)
    assert before["admins"] == [tenant_a.owner.pk]
    with tenant_context(tenant_a.tenant), pytest.raises(services.LastAdminError):
        PATHS[path](*_fresh(tenant_a))
    assert _state(tenant_a) == before


@pytest.mark.parametrize("path", PATHS)
def test_service_allows_it_with_another_admin(tenant_a: TenantWorld, path: str) -> None:
    with tenant_context(tenant_a.tenant):
        # The other admin holds Admin through a group of its own, which every path keeps.
        second, _ = services.create_user("second", tenant_a.name, password="Backup-Adm1n")
        other = services.create_group("Backup admins", members=[second])
        services.set_group_roles(other, [Role.ADMIN])
        PATHS[path](*_fresh(tenant_a))
        assert [u.pk for u in services.active_admins()] == [second.pk]


def test_guard_counts_only_active_admins(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        second, _ = services.create_user(
            "second", tenant_a.name, password="Backup-Adm1n", groups=[tenant_a.admin_group]
        )
        services.update_user(
            second, display_name="", is_active=False, groups=[tenant_a.admin_group]
        )
        with pytest.raises(services.LastAdminError):
            services.delete_user(User.objects.get(pk=tenant_a.owner.pk))
        assert User.objects.filter(pk=tenant_a.owner.pk).exists()


def test_guard_is_per_tenant(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    """B's admin does not count for A."""
    with tenant_context(tenant_a.tenant), pytest.raises(services.LastAdminError):
        services.delete_user(User.objects.get(pk=tenant_a.owner.pk))
    assert _state(tenant_b)["admins"] == [tenant_b.owner.pk]


# --- through the pages -----------------------------------------------------------------


def _web_paths(world: TenantWorld) -> dict[str, tuple[str, dict[str, Any]]]:
    owner, group = world.owner, world.admin_group
    return {
        "delete_user": (reverse("adminaccess:user_delete", args=[owner.pk]), {}),
        "disable_user": (
            reverse("adminaccess:user_edit", args=[owner.pk]),
            {"display_name": "x", "groups": [group.pk]},  # is_active unchecked
        ),
        "update_user_removing_group": (
            reverse("adminaccess:user_edit", args=[owner.pk]),
            {"display_name": "x", "is_active": "on"},
        ),
        "delete_group": (reverse("adminaccess:group_delete", args=[group.pk]), {}),
        "remove_role": (
            reverse("adminaccess:group_roles", args=[group.pk]),
            {"roles": [Role.READER.value]},
        ),
        "remove_member": (
            reverse("adminaccess:group_remove_member", args=[group.pk, owner.pk]),
            {},
        ),
        "update_group_members": (
            reverse("adminaccess:group_edit", args=[group.pk]),
            {"name": group.name, "description": ""},
        ),
    }


WEB_PATHS = [
    "delete_user",
    "disable_user",
    "update_user_removing_group",
    "delete_group",
    "remove_role",
    "remove_member",
    "update_group_members",
]


@pytest.mark.parametrize("path", WEB_PATHS)
def test_page_shows_last_admin_error(
    tenant_a: TenantWorld, admin_client_a: Client, path: str
) -> None:
    url, data = _web_paths(tenant_a)[path]
    before = _state(tenant_a)
    response = admin_client_a.post(url, data, follow=True)
    assert response.status_code == 200
    assert LAST_ADMIN_TEXT in response.content.decode()
    assert _state(tenant_a) == before


@pytest.mark.parametrize("path", WEB_PATHS)
def test_page_allows_it_with_another_admin(
    tenant_a: TenantWorld, admin_client_a: Client, path: str
) -> None:
    with tenant_context(tenant_a.tenant):
        second, _ = services.create_user("second", tenant_a.name, password="Backup-Adm1n")
        other = services.create_group("Backup admins", members=[second])
        services.set_group_roles(other, [Role.ADMIN])
    url, data = _web_paths(tenant_a)[path]
    before = _state(tenant_a)
    # Done and redirected (following it would be a 403: the owner is no Admin any more).
    response = admin_client_a.post(url, data)
    assert response.status_code == 302
    after = _state(tenant_a)
    assert after["admins"] == [second.pk]
    assert after != before


def test_role_rows_unchanged_after_refusal(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    grants_before = list(GroupRole.unscoped.order_by("pk").values_list("pk", "group_id", "role"))
    admin_client_a.post(
        reverse("adminaccess:group_roles", args=[tenant_a.admin_group.pk]), {"roles": []}
    )
    assert (
        list(GroupRole.unscoped.order_by("pk").values_list("pk", "group_id", "role"))
        == grants_before
    )
