"""Users synchronized from LDAP sign in with their directory password, checked by a bind
as their entry on the real slapd; Mailvault keeps no copy of it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from directory.slapd import BASE_DN, Slapd
from directory.test_ldap_sync import make_service
from factories import TenantWorld, admin_login, web_login
from mailvault.accounts import services as accounts
from mailvault.accounts.models import Group, User
from mailvault.accounts.roles import Role
from mailvault.directory import ldap, sync
from mailvault.directory.models import DirectoryService, SyncedObject
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

ALICE = "alice@example.org"
ALICE_PASSWORD = "Directory-Secret-4711"


def _set_directory_password(slapd: Slapd, uid: str, password: str) -> None:
    slapd.ldapmodify(
        f"dn: uid={uid},ou=people,{BASE_DN}\nchangetype: modify\n"
        f"replace: userPassword\nuserPassword: {password}\n"
    )


@pytest.fixture
def synced(tenant_a: TenantWorld, slapd: Slapd) -> DirectoryService:
    """alice and bob synchronized; the directory group "staff" (alice and bob) reads
    Web Access."""
    _set_directory_password(slapd, "alice", ALICE_PASSWORD)
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd, "starttls")
        sync.synchronize(service)
        accounts.set_group_roles(Group.objects.get(name="staff"), [Role.READER])
    return service


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_web_access_asks_for_the_directory_password_and_a_bind_decides(
    synced: DirectoryService,
) -> None:
    client = Client()
    client.post(reverse("webaccess:login"), {"username": ALICE})
    page = client.get(reverse("webaccess:login_password"))
    assert page.status_code == 200 and b'name="password"' in page.content
    assert web_login(Client(), ALICE, "not-her-password").status_code == 401
    response = web_login(client, ALICE, ALICE_PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/webaccess/"
    assert _signed_in(client)
    assert client.get("/webaccess/").status_code == 200
    # Nothing of the password was kept.
    user = User.unscoped.get(username=ALICE)
    assert not user.has_usable_password()


def test_admin_access_for_a_directory_admin(synced: DirectoryService, slapd: Slapd) -> None:
    tenant = synced.tenant
    with tenant_context(tenant):
        accounts.set_group_roles(Group.objects.get(name="engineering"), [Role.ADMIN])
    client = Client()
    assert admin_login(client, ALICE, "wrong").status_code == 401
    response = admin_login(client, ALICE, ALICE_PASSWORD)
    assert response.status_code == 302, response.content[:400]
    assert client.get("/adminaccess/dashboard/").status_code == 200


def test_an_empty_password_never_reaches_the_directory(synced: DirectoryService) -> None:
    """A bind with a DN and no password is an anonymous bind, which succeeds."""
    with tenant_context(synced.tenant):
        link = SyncedObject.objects.get(user__username=ALICE)
        assert ldap.verify_password(synced, link.external_id, ALICE_PASSWORD)
        assert not ldap.verify_password(synced, link.external_id, "")
        assert not ldap.verify_password(synced, "no-such-entry-uuid", ALICE_PASSWORD)


def test_a_user_without_a_directory_password_cannot_sign_in(synced: DirectoryService) -> None:
    # bob has no userPassword in the directory: every bind as him is refused.
    assert web_login(Client(), "bob@example.org", ALICE_PASSWORD).status_code == 401


def test_an_unreachable_directory_refuses_the_sign_in(
    synced: DirectoryService, slapd: Slapd
) -> None:
    DirectoryService.unscoped.filter(pk=synced.pk).update(ldap_port=1)
    client = Client()
    response = web_login(client, ALICE, ALICE_PASSWORD)
    assert response.status_code == 401 and not _signed_in(client)


def test_a_disabled_user_is_refused_even_with_the_right_password(
    synced: DirectoryService,
) -> None:
    User.unscoped.filter(username=ALICE).update(is_active=False)
    assert web_login(Client(), ALICE, ALICE_PASSWORD).status_code in (401, 403)
