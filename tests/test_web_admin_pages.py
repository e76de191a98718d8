"""Admin Access pages through the Django test client: dashboard, menu, users, groups and
roles, and forms that must not accept another tenant's ids in their fields."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld, web_login
from mailvault.accounts import services
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox
from mailvault.tenancy.context import tenant_context
from mailvault.web.navigation import ADMIN_MENU, UNBUILT, MenuItem

pytestmark = pytest.mark.django_db


def test_dashboard_shows_tenant_and_notice(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    response = admin_client_a.get(reverse("adminaccess:dashboard"))
    assert response.status_code == 200
    body = response.content.decode()
    assert tenant_a.name in body
    assert "tenant-b" not in body
    assert "still the only Admin" in body
    assert response.context["summary"]["users"] == 2


def test_menu_has_every_section(admin_client_a: Client) -> None:
    body = admin_client_a.get(reverse("adminaccess:dashboard")).content.decode()
    for section in ADMIN_MENU:
        for item in section.items:
            if Role.ADMIN in item.roles:  # the menu shows what the user's roles open
                assert item.label in body, item.label


def test_unbuilt_sections_say_so(admin_client_a: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every section may be built by now: an unbuilt one is made up for the page's sake.
    item = MenuItem("made-up", "Made Up", None, issue_hint="a made-up section")
    monkeypatch.setitem(UNBUILT, item.slug, item)
    for slug in sorted(UNBUILT):
        response = admin_client_a.get(reverse("adminaccess:not_built", args=[slug]))
        assert response.status_code == 200
        assert "not built yet" in response.content.decode()


def test_unknown_slug_and_url_are_404(admin_client_a: Client) -> None:
    response = admin_client_a.get("/adminaccess/soon/no-such-thing/")
    assert response.status_code == 404
    assert "There is nothing here" in response.content.decode()
    assert admin_client_a.get("/adminaccess/nope/").status_code == 404


def test_create_group_roles_and_user_then_sign_in(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:group_create"), {"name": "Sales", "description": "Sales team"}
    )
    group = Group.unscoped.get(tenant=tenant_a.tenant, name="Sales")
    assert response["Location"] == reverse("adminaccess:group_roles", args=[group.pk])
    response = admin_client_a.post(
        reverse("adminaccess:group_roles", args=[group.pk]), {"roles": [Role.READER.value]}
    )
    assert response.status_code == 302
    assert set(GroupRole.unscoped.filter(group=group).values_list("role", flat=True)) == {
        Role.READER.value
    }

    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {
            "local_part": "Jane",
            "domain": tenant_a.name,
            "display_name": "Jane Doe",
            "password": "",
            "groups": [group.pk],
        },
    )
    assert response.status_code == 200
    password = response.context["password"]
    body = response.content.decode()
    assert "jane@tenant-a" in body and password in body
    jane = User.unscoped.get(username="jane@tenant-a")
    assert jane.must_change_password
    assert jane.roles == {Role.READER.value}

    client = Client()
    assert web_login(client, "jane@tenant-a", password).status_code == 302
    assert client.get("/webaccess/")["Location"] == reverse("webaccess:password")


def test_create_user_with_bad_password_refused(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {"local_part": "weak", "domain": tenant_a.name, "password": "weakweak"},
    )
    assert response.status_code == 200
    assert "at least 10 characters" in response.content.decode()
    assert not User.unscoped.filter(username="weak@tenant-a").exists()


@pytest.mark.parametrize("local_part", ["member", "MEMBER", "has space", "a@b"])
def test_create_user_bad_or_duplicate_name(
    tenant_a: TenantWorld, admin_client_a: Client, local_part: str
) -> None:
    count = User.unscoped.count()
    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {"local_part": local_part, "domain": tenant_a.name, "password": "Fine-Pass-123"},
    )
    assert response.status_code == 200
    assert User.unscoped.count() == count


def test_duplicate_group_name_refused(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    response = admin_client_a.post(reverse("adminaccess:group_create"), {"name": "readers"})
    assert response.status_code == 200
    assert "exists already" in response.content.decode()
    assert Group.unscoped.filter(tenant=tenant_a.tenant).count() == 2


def test_same_group_name_in_other_tenant_is_fine(
    tenant_b: TenantWorld, admin_client_a: Client
) -> None:
    with tenant_context(tenant_b.tenant):
        services.create_group("Sales")
    response = admin_client_a.post(reverse("adminaccess:group_create"), {"name": "Sales"})
    assert response.status_code == 302
    assert Group.unscoped.filter(name="Sales").count() == 2


def test_user_list_and_search(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    body = admin_client_a.get(reverse("adminaccess:users")).content.decode()
    assert "admin@tenant-a" in body and "member@tenant-a" in body
    assert "member@tenant-b" not in body
    found = admin_client_a.get(reverse("adminaccess:users"), {"q": "memb"}).context["users"]
    assert [u.username for u in found] == ["member@tenant-a"]


def test_group_list_shows_only_own(admin_client_a: Client, tenant_b: TenantWorld) -> None:
    with_roles = admin_client_a.get(reverse("adminaccess:groups"))
    groups = list(with_roles.context["groups"])
    assert {g.tenant_id for g in groups} == {groups[0].tenant_id}
    assert tenant_b.reader_group.pk not in {g.pk for g in groups}


# --- ids of another tenant inside form fields -----------------------------------------


def test_user_form_refuses_foreign_group(
    tenant_a: TenantWorld, tenant_b: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {
            "local_part": "sneaky",
            "domain": tenant_a.name,
            "password": "Fine-Pass-123",
            "groups": [tenant_b.admin_group.pk],
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not User.unscoped.filter(username="sneaky@tenant-a").exists()
    members_b = set(Group.members.through.objects.filter(group_id=tenant_b.admin_group.pk))
    assert len(members_b) == 1


def test_user_form_refuses_foreign_domain(tenant_b: TenantWorld, admin_client_a: Client) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {"local_part": "sneaky", "domain": tenant_b.name, "password": "Fine-Pass-123"},
    )
    assert response.status_code == 200
    assert not User.unscoped.filter(username="sneaky@tenant-b").exists()


def test_user_edit_refuses_foreign_group(
    tenant_a: TenantWorld, tenant_b: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_edit", args=[tenant_a.member.pk]),
        {"display_name": "M", "is_active": "on", "groups": [tenant_b.admin_group.pk]},
    )
    assert response.status_code == 200
    assert not Group.members.through.objects.filter(
        group_id=tenant_b.admin_group.pk, user_id=tenant_a.member.pk
    ).exists()


def test_group_edit_refuses_foreign_member(
    tenant_a: TenantWorld, tenant_b: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:group_edit", args=[tenant_a.reader_group.pk]),
        {"name": "Readers", "members": [tenant_a.member.pk, tenant_b.member.pk]},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert (
        not Group.members.through.objects.filter(user_id=tenant_b.member.pk)
        .exclude(group_id=tenant_b.reader_group.pk)
        .exists()
    )


def test_mailbox_form_refuses_foreign_owner_and_group(
    tenant_a: TenantWorld, tenant_b: TenantWorld, admin_client_a: Client
) -> None:
    for field, value in [("owner", tenant_b.member.pk), ("shared_with", tenant_b.reader_group.pk)]:
        response = admin_client_a.post(
            reverse("adminaccess:mailbox_create"),
            {
                "primary_address": f"box@{tenant_a.manual_domain.name}",
                "kind": Mailbox.Kind.SHARED,
                field: value,
            },
        )
        assert response.status_code == 200, field
        assert "Select a valid choice" in response.content.decode()
        assert not Mailbox.unscoped.filter(primary_address__startswith="box@").exists()


def test_mailbox_on_foreign_domain_refused(tenant_b: TenantWorld, admin_client_a: Client) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:mailbox_create"),
        {"primary_address": f"box@{tenant_b.manual_domain.name}", "kind": Mailbox.Kind.USER},
    )
    assert response.status_code == 200
    assert "not a domain of this tenant" in response.content.decode()
    assert not Mailbox.unscoped.filter(primary_address__startswith="box@").exists()
