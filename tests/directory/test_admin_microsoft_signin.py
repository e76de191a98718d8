"""Admin Access sign-in with Microsoft for synchronized admins (first-setup-m365.md: "The
synchronized admin user should now be able to logout and login to Admin Access"): the
username on the Admin Access sign-in page leads to the tenant's Microsoft sign-in (the
emulator's real authorize/token endpoints); Admin comes from a group; without it, or for
a provisioned user, nothing changes."""

from __future__ import annotations

import html
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.directory import services, sync
from mailvault.directory.models import DirectoryService
from mailvault.tenancy.context import tenant_context

from .test_microsoft_signin import HIDDEN

pytestmark = pytest.mark.django_db


def synced_admin(tenant_a: TenantWorld, m365: EmulatorHandle, *, grant: bool = True) -> User:
    m365.control(
        "POST",
        "redirect-uris",
        {"uris": ["http://testserver" + reverse("adminaccess:login_microsoft_callback")]},
    )
    with tenant_context(tenant_a.tenant):
        service = services.save_service(
            "Contoso",
            DirectoryService.Kind.ENTRA,
            services.Constraints(only_group_names=[]),
            entra_tenant_id=m365.tenant_id,
        )
        sync.synchronize(service)
        group = Group.objects.get(name="Mailvault Admins")
        if grant:
            GroupRole.objects.create(group=group, role=Role.ADMIN)
        user = group.members.order_by("username").first()
        assert user is not None and user.source == User.Source.DIRECTORY
        return user


def admin_sign_in(client: Client, m365: EmulatorHandle, username: str):  # type: ignore[no-untyped-def]
    to_microsoft = client.post(reverse("adminaccess:login"), {"username": username, "password": ""})
    assert to_microsoft.status_code == 302
    assert to_microsoft["Location"] == reverse("adminaccess:login_microsoft")
    start = client.get(to_microsoft["Location"])
    assert start.status_code == 302
    authorize = start["Location"]
    assert authorize.startswith(f"{m365.base_url}/{m365.tenant_id}/oauth2/v2.0/authorize")
    with m365.http() as browser:
        form = browser.get(authorize)
        fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
        fields.update(login=username, passwd=m365.user_password, step="signin")
        back = browser.post(urlsplit(authorize)._replace(query="").geturl(), data=fields)
    assert back.status_code == 302, back.text[:500]
    callback = urlsplit(back.headers["Location"])
    assert callback.path == reverse("adminaccess:login_microsoft_callback")
    return client.get(f"{callback.path}?{callback.query}")


def test_synchronized_admin_signs_in_to_admin_access(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    user = synced_admin(tenant_a, m365)
    client = Client()
    done = admin_sign_in(client, m365, user.username)
    assert done.status_code == 302 and done["Location"] == reverse("adminaccess:dashboard")
    dashboard = client.get(reverse("adminaccess:dashboard"))
    assert dashboard.status_code == 200 and user.username.encode() in dashboard.content


def test_synchronized_user_without_admin_is_refused(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    user = synced_admin(tenant_a, m365, grant=False)
    client = Client()
    refused = admin_sign_in(client, m365, user.username)
    assert refused.status_code == 403 and b"no access to Admin Access" in refused.content
    assert client.get(reverse("adminaccess:dashboard")).status_code == 302  # not signed in


def test_provisioned_admin_still_uses_the_password(tenant_a: TenantWorld) -> None:
    client = Client()
    wrong = client.post(
        reverse("adminaccess:login"), {"username": tenant_a.owner.username, "password": "nope"}
    )
    assert wrong.status_code == 401  # the password form, not Microsoft
    assert client.get(reverse("adminaccess:login_microsoft")).status_code == 302
    assert client.get(reverse("adminaccess:login_microsoft"))["Location"] == reverse(
        "adminaccess:login"
    )
