"""Tenant API keys: made in Admin Access and shown once, stored hashed, revocable,
bound to their tenant, never stronger than their user."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from factories import TenantWorld
from mailvault.accounts import services as accounts
from mailvault.accounts.models import User
from mailvault.api import keys
from mailvault.api.models import ApiKey
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

from .conftest import api_client, make_key

pytestmark = pytest.mark.django_db


def _usernames(client: Client) -> set[str]:
    response = client.get("/api/v1/users/")
    assert response.status_code == 200, response.content
    return {u["username"] for u in response.json()["results"]}


def test_admin_access_creates_a_key_shown_once_and_stored_hashed(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    page = admin_client_a.get("/adminaccess/api-keys/")
    assert page.status_code == 200
    assert b"Create API key" in page.content

    created = admin_client_a.post(
        "/adminaccess/api-keys/", {"name": "provisioning", "roles": ["admin"]}
    )
    assert created.status_code == 200
    token = created.context["token"]
    assert token.startswith("mvk_") and token in created.content.decode()

    with tenant_context(tenant_a.tenant):
        key = ApiKey.objects.get(name="provisioning")
    assert key.user == tenant_a.owner and key.roles == ["admin"]
    assert key.secret_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {key.secret_hash, key.prefix} and token.startswith(key.prefix + "_")
    listing = admin_client_a.get("/adminaccess/api-keys/").content.decode()
    assert key.prefix in listing and token not in listing  # never shown again

    assert tenant_a.owner.username in _usernames(api_client(token))
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_admin_access_refuses_roles_the_admin_lacks(admin_client_a: Client) -> None:
    response = admin_client_a.post("/adminaccess/api-keys/", {"name": "mail", "roles": ["reader"]})
    assert response.status_code == 200
    assert "token" not in response.context
    assert response.context["form"].errors["roles"]


def test_revoked_key_is_refused_with_401(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    token = make_key(tenant_a)
    client = api_client(token)
    assert client.get("/api/v1/users/").status_code == 200
    with tenant_context(tenant_a.tenant):
        key = ApiKey.objects.get(prefix=keys.prefix_of(token))
    response = admin_client_a.post(f"/adminaccess/api-keys/{key.pk}/revoke/")
    assert response.status_code == 302
    refused = client.get("/api/v1/users/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer mvk_00000000_nothing", "Bearer garbage", "Basic dXNlcjpwdw==", "Bearer "],
)
def test_bad_credentials_are_401(header: str) -> None:
    response = Client(headers={"Authorization": header}).get("/api/v1/users/")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}


def test_no_key_is_401_and_a_session_does_not_count(admin_client_a: Client) -> None:
    assert Client().get("/api/v1/users/").status_code == 401
    assert admin_client_a.get("/api/v1/users/").status_code == 401


def test_a_tampered_secret_is_refused(tenant_a: TenantWorld) -> None:
    token = make_key(tenant_a)
    assert (
        api_client(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
        .get("/api/v1/users/")
        .status_code
        == 401
    )


def test_a_key_sees_only_its_own_tenant(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    a_names = _usernames(api_client(make_key(tenant_a)))
    b_names = _usernames(api_client(make_key(tenant_b)))
    assert tenant_a.owner.username in a_names and tenant_b.owner.username in b_names
    assert not a_names & b_names
    assert all(n.endswith(("@tenant-a", "@mail.tenant-a.example")) for n in a_names)


def test_suspended_tenant_and_disabled_user_keys_are_refused(tenant_a: TenantWorld) -> None:
    member_token = make_key(tenant_a, tenant_a.member, ["reader"])
    admin_token = make_key(tenant_a)
    with tenant_context(tenant_a.tenant):
        accounts.update_user(tenant_a.member, display_name="M", is_active=False, groups=[])
    assert api_client(member_token).get("/api/v1/search/?q=hello").status_code == 401
    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert api_client(admin_token).get("/api/v1/users/").status_code == 401


def test_a_key_cannot_exceed_its_user_and_loses_roles_with_it(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant), pytest.raises(keys.ApiKeyError):
        keys.create_key("too strong", tenant_a.member, ["admin"])
    token = make_key(tenant_a, tenant_a.member, ["reader"])
    client = api_client(token)
    assert client.get("/api/v1/search/?q=hello").status_code == 200
    with tenant_context(tenant_a.tenant):
        accounts.set_group_roles(tenant_a.reader_group, [])
    assert client.get("/api/v1/search/?q=hello").status_code == 403


def test_keys_of_a_deleted_user_go_with_it(tenant_a: TenantWorld) -> None:
    token = make_key(tenant_a, tenant_a.member, ["reader"])
    with tenant_context(tenant_a.tenant):
        accounts.delete_user(User.objects.get(pk=tenant_a.member.pk))
        assert not ApiKey.objects.filter(prefix=keys.prefix_of(token)).exists()
    assert api_client(token).get("/api/v1/search/?q=x").status_code == 401
