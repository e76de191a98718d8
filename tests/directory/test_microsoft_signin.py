"""Web Access sign-in with Microsoft for synchronized users, through the emulator's real
authorize/token endpoints (the sign-in form posted with httpx): the user is found by
tid + oid; roles come from groups; a disabled or removed user does not get in. And
Connect Tenant's callback: declined consent shows the error."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.directory import services, sync
from mailvault.directory.models import DirectoryService, SyncedObject
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

HIDDEN = re.compile(r"<input type='hidden' name='([^']*)' value='([^']*)'>")


def synced_reader(tenant_a: TenantWorld, m365: EmulatorHandle) -> SyncedObject:
    # The test client's host is "testserver": register its callback like a real app does.
    m365.control(
        "POST",
        "redirect-uris",
        {"uris": ["http://testserver" + reverse("webaccess:login_microsoft_callback")]},
    )
    with tenant_context(tenant_a.tenant):
        service = services.save_service(
            "Contoso",
            DirectoryService.Kind.ENTRA,
            services.Constraints(only_group_names=[]),
            entra_tenant_id=m365.tenant_id,
        )
        sync.synchronize(service)
        group = Group.objects.get(name="Mailvault Readers")
        GroupRole.objects.create(group=group, role=Role.READER)
        user = group.members.order_by("username").first()
        assert user is not None
        return SyncedObject.objects.select_related("user").get(user=user)


def microsoft_sign_in(client: Client, m365: EmulatorHandle, username: str):  # type: ignore[no-untyped-def]
    """Username first; then the emulator's sign-in form; back with the code."""
    client.post(reverse("webaccess:login"), {"username": username})
    to_microsoft = client.get(reverse("webaccess:login_password"))
    assert to_microsoft.status_code == 302
    start = client.get(to_microsoft["Location"])
    assert start.status_code == 302
    authorize = start["Location"]
    assert authorize.startswith(f"{m365.base_url}/{m365.tenant_id}/oauth2/v2.0/authorize")
    assert "login_hint=" in authorize and "code_challenge=" in authorize
    with m365.http() as browser:
        form = browser.get(authorize)
        fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
        assert html.unescape(username) in form.text  # the login hint is filled in
        fields.update(login=username, passwd=m365.user_password, step="signin")
        back = browser.post(urlsplit(authorize)._replace(query="").geturl(), data=fields)
    assert back.status_code == 302, back.text[:500]
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def test_synchronized_reader_signs_in(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    link = synced_reader(tenant_a, m365)
    client = Client()
    done = microsoft_sign_in(client, m365, link.user.username)  # type: ignore[union-attr]
    assert done.status_code == 302 and done["Location"] == reverse("webaccess:home")
    home = client.get(reverse("webaccess:home"))
    assert home.status_code == 200
    assert link.user.username.encode() in home.content  # type: ignore[union-attr]


def test_disabled_and_removed_users_do_not_get_in(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    link = synced_reader(tenant_a, m365)
    user = link.user
    assert user is not None
    with tenant_context(tenant_a.tenant):
        User.objects.filter(pk=user.pk).update(is_active=False)
    refused = microsoft_sign_in(Client(), m365, user.username)
    assert refused.status_code == 403 and b"disabled" in refused.content
    # The directory link gone (the user left the directory): no other user matches
    with tenant_context(tenant_a.tenant):
        User.objects.filter(pk=user.pk).update(is_active=True)
        SyncedObject.objects.filter(pk=link.pk).delete()
    client = Client()
    client.post(reverse("webaccess:login"), {"username": user.username})
    page = client.get(reverse("webaccess:login_password"))
    assert page.status_code == 200 and b"signs in there" in page.content


def test_user_without_a_web_role_is_refused(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    link = synced_reader(tenant_a, m365)
    with tenant_context(tenant_a.tenant):
        GroupRole.objects.filter(role=Role.READER, group__name="Mailvault Readers").delete()
    refused = microsoft_sign_in(Client(), m365, link.user.username)  # type: ignore[union-attr]
    assert refused.status_code == 403 and b"Reader role" in refused.content


def test_declined_consent_shows_the_error(admin_client_a: Client, m365: EmulatorHandle) -> None:
    start = admin_client_a.get(reverse("adminaccess:directory_consent_start") + "?flow=abc123")
    assert start.status_code == 302
    target = start["Location"]
    assert target.startswith(f"{m365.base_url}/organizations/v2.0/adminconsent?")
    state = re.search(r"state=([^&]+)", target)
    assert state is not None
    back = admin_client_a.get(
        reverse("adminaccess:directory_consent_callback"),
        {
            "admin_consent": "True",
            "error": "consent_required",
            "error_description": "AADSTS65004: The resource owner denied the request.",
            "state": state.group(1),
        },
    )
    assert b"AADSTS65004" in back.content
    status = admin_client_a.get(
        reverse("adminaccess:directory_consent_status") + "?flow=abc123"
    ).content
    assert b"consent-error" in status and b"AADSTS65004" in status
    # a forged answer (unknown state) is refused
    forged = admin_client_a.get(
        reverse("adminaccess:directory_consent_callback"),
        {"tenant": m365.tenant_id, "state": "forged"},
    )
    assert forged.status_code == 400
