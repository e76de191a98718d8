"""Signing in to both front doors: wrong passwords, lockout, suspended tenants, forced
password change, CSRF, expired sessions, and which role opens which door."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from factories import TenantWorld, admin_login, client_for, web_login
from mailvault.accounts import services
from mailvault.accounts.login import GENERIC_FAILURE, LOCKED
from mailvault.accounts.models import LoginFailure, User
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant, set_status

pytestmark = pytest.mark.django_db

DASHBOARD = "/adminaccess/dashboard/"
WEB_HOME = "/webaccess/"


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _member_web_login(world: TenantWorld) -> int:
    return web_login(Client(), world.member.username, world.member_password).status_code


def _owner_admin_login(world: TenantWorld) -> int:
    return admin_login(Client(), world.owner.username, world.owner_password).status_code


# --- wrong passwords and lockout -------------------------------------------------------


def test_admin_login_works(tenant_a: TenantWorld) -> None:
    client = Client()
    response = admin_login(client, tenant_a.owner.username, tenant_a.owner_password)
    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    assert client.get(DASHBOARD).status_code == 200
    assert User.unscoped.get(pk=tenant_a.owner.pk).last_login is not None


def test_web_login_works(tenant_a: TenantWorld) -> None:
    client = Client()
    response = web_login(client, tenant_a.member.username, tenant_a.member_password)
    assert response.status_code == 302
    assert response["Location"] == WEB_HOME
    assert client.get(WEB_HOME).status_code == 200


@pytest.mark.parametrize("username", ["admin@tenant-a", "nobody@tenant-a", "x@nowhere"])
def test_wrong_password_generic_message(tenant_a: TenantWorld, username: str) -> None:
    client = Client()
    response = admin_login(client, username, "Wrong-Pass-123")
    assert response.status_code == 401
    assert GENERIC_FAILURE in response.content.decode()
    assert not _signed_in(client)


def test_wrong_password_web_access(tenant_a: TenantWorld) -> None:
    client = Client()
    response = web_login(client, tenant_a.member.username, "Wrong-Pass-123")
    assert response.status_code == 401
    assert GENERIC_FAILURE in response.content.decode()
    unknown = web_login(Client(), "ghost@tenant-a", "Wrong-Pass-123")
    assert unknown.status_code == 401
    assert GENERIC_FAILURE in unknown.content.decode()


def test_lockout_after_max_failures(tenant_a: TenantWorld) -> None:
    username = tenant_a.owner.username
    limit = settings.LOGIN_MAX_FAILURES
    for _ in range(limit - 1):
        assert admin_login(Client(), username, "Wrong-Pass-123").status_code == 401
    last = admin_login(Client(), username, "Wrong-Pass-123")
    assert last.status_code == 403
    assert LOCKED in last.content.decode()
    # Locked even with the right password, through either door.
    client = Client()
    response = admin_login(client, username, tenant_a.owner_password)
    assert response.status_code == 403
    assert LOCKED in response.content.decode()
    assert not _signed_in(client)
    # Other users are not affected.
    assert _member_web_login(tenant_a) == 302


def test_lockout_via_web_access_locks_admin_access_too(tenant_a: TenantWorld) -> None:
    username = tenant_a.member.username
    for _ in range(settings.LOGIN_MAX_FAILURES):
        web_login(Client(), username, "Wrong-Pass-123")
    response = web_login(Client(), username, tenant_a.member_password)
    assert response.status_code == 403
    assert LOCKED in response.content.decode()


def test_unknown_username_locked_the_same_way(tenant_a: TenantWorld) -> None:
    known, unknown = tenant_a.owner.username, "ghost@tenant-a"
    answers = {}
    for username in (known, unknown):
        answers[username] = [
            (r.status_code, r.content.decode().count(LOCKED))
            for r in (
                admin_login(Client(), username, "Wrong-Pass-123")
                for _ in range(settings.LOGIN_MAX_FAILURES + 1)
            )
        ]
    assert answers[known] == answers[unknown]
    assert answers[unknown][-1] == (403, 1)


def test_lockout_expires(tenant_a: TenantWorld) -> None:
    username = tenant_a.owner.username
    for _ in range(settings.LOGIN_MAX_FAILURES):
        admin_login(Client(), username, "Wrong-Pass-123")
    assert admin_login(Client(), username, tenant_a.owner_password).status_code == 403
    LoginFailure.objects.update(
        at=timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS + 1)
    )
    assert admin_login(Client(), username, tenant_a.owner_password).status_code == 302


def test_success_clears_failures(tenant_a: TenantWorld) -> None:
    username = tenant_a.owner.username
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        admin_login(Client(), username, "Wrong-Pass-123")
    assert admin_login(Client(), username, tenant_a.owner_password).status_code == 302
    assert admin_login(Client(), username, "Wrong-Pass-123").status_code == 401


# --- suspended tenants and disabled users ----------------------------------------------


def test_suspended_tenant_cannot_sign_in(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    set_status(tenant_a.name, Tenant.Status.SUSPENDED)
    response = admin_login(Client(), tenant_a.owner.username, tenant_a.owner_password)
    assert response.status_code == 401
    assert GENERIC_FAILURE in response.content.decode()
    assert _member_web_login(tenant_a) == 401
    # Other tenants are unaffected; resuming lets A in again.
    assert _owner_admin_login(tenant_b) == 302
    set_status(tenant_a.name, Tenant.Status.ACTIVE)
    assert _owner_admin_login(tenant_a) == 302


def test_suspension_ends_existing_sessions(
    tenant_a: TenantWorld, admin_client_a: Client, reader_client_a: Client
) -> None:
    assert admin_client_a.get(DASHBOARD).status_code == 200
    assert reader_client_a.get(WEB_HOME).status_code == 200
    set_status(tenant_a.name, Tenant.Status.SUSPENDED)
    response = admin_client_a.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("adminaccess:login"))
    response = reader_client_a.get(WEB_HOME)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("webaccess:login"))


def test_disabled_user_cannot_sign_in_and_loses_session(
    tenant_a: TenantWorld, reader_client_a: Client
) -> None:
    with tenant_context(tenant_a.tenant):
        services.update_user(
            User.objects.get(pk=tenant_a.member.pk),
            display_name="",
            is_active=False,
            groups=[tenant_a.reader_group],
        )
    assert _member_web_login(tenant_a) == 401
    assert reader_client_a.get(WEB_HOME).status_code == 302


# --- forced password change ------------------------------------------------------------


def test_provisioned_admin_must_change_password(db: None) -> None:
    provisioned = provision_tenant("fresh")
    client = Client()
    response = admin_login(client, provisioned.admin_username, provisioned.admin_password)
    assert response.status_code == 302
    password_url = reverse("adminaccess:password")
    for path in [DASHBOARD, "/adminaccess/users/", "/adminaccess/groups/", "/adminaccess/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == password_url
    page = client.get(password_url)
    assert page.status_code == 200
    # A new password breaking the rules is refused, and the redirect stays.
    response = client.post(
        password_url,
        {
            "old_password": provisioned.admin_password,
            "new_password": "short",
            "confirm_password": "short",
        },
    )
    assert response.status_code == 200
    assert "at least 10 characters" in response.content.decode()
    assert client.get(DASHBOARD).status_code == 302
    # The old password again is refused too.
    response = client.post(
        password_url,
        {
            "old_password": provisioned.admin_password,
            "new_password": provisioned.admin_password,
            "confirm_password": provisioned.admin_password,
        },
    )
    assert "must differ" in response.content.decode()
    response = client.post(
        password_url,
        {
            "old_password": provisioned.admin_password,
            "new_password": "Brand-New-Pass-1",
            "confirm_password": "Brand-New-Pass-1",
        },
    )
    assert response.status_code == 302
    assert client.get(DASHBOARD).status_code == 200  # still signed in, no more redirect
    assert admin_login(Client(), provisioned.admin_username, "Brand-New-Pass-1").status_code == 302


def test_admin_reset_forces_change_in_web_access(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_reset_password", args=[tenant_a.member.pk])
    )
    assert response.status_code == 200
    password = response.context["password"]
    assert password in response.content.decode()
    # The old password is gone.
    assert _member_web_login(tenant_a) == 401
    client = Client()
    assert web_login(client, tenant_a.member.username, password).status_code == 302
    response = client.get(WEB_HOME)
    assert response.status_code == 302
    assert response["Location"] == reverse("webaccess:password")
    response = client.post(
        reverse("webaccess:password"),
        {
            "old_password": password,
            "new_password": "Reader-New-Key-7",
            "confirm_password": "Reader-New-Key-7",
        },
    )
    assert response.status_code == 302
    assert client.get(WEB_HOME).status_code == 200


def test_password_confirmation_must_match(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:password"),
        {
            "old_password": tenant_a.owner_password,
            "new_password": "Brand-New-Pass-1",
            "confirm_password": "Brand-New-Pass-2",
        },
    )
    assert response.status_code == 200
    assert "differ" in response.content.decode()
    assert User.unscoped.get(pk=tenant_a.owner.pk).check_password(tenant_a.owner_password)


# --- CSRF and expired sessions ---------------------------------------------------------


def test_csrf_failure_gives_friendly_page(tenant_a: TenantWorld) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("adminaccess:login"),
        {"username": tenant_a.owner.username, "password": tenant_a.owner_password},
    )
    assert response.status_code == 403
    body = response.content.decode()
    assert "The form has expired" in body
    assert "reload the page" in body
    assert not _signed_in(client)


def test_csrf_token_from_form_is_accepted(tenant_a: TenantWorld) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("adminaccess:login"))
    token = page.context["csrf_token"]
    response = client.post(
        reverse("adminaccess:login"),
        {
            "username": tenant_a.owner.username,
            "password": tenant_a.owner_password,
            "csrfmiddlewaretoken": str(token),
        },
    )
    assert response.status_code == 302


def test_csrf_failure_on_signed_in_action(tenant_a: TenantWorld) -> None:
    client = client_for(tenant_a.owner, enforce_csrf_checks=True)
    response = client.post(reverse("adminaccess:user_delete", args=[tenant_a.member.pk]))
    assert response.status_code == 403
    assert "The form has expired" in response.content.decode()
    assert User.unscoped.filter(pk=tenant_a.member.pk).exists()


def test_expired_session_redirects_to_login(
    admin_client_a: Client, reader_client_a: Client
) -> None:
    for client, url, login in [
        (admin_client_a, DASHBOARD, "adminaccess:login"),
        (reader_client_a, WEB_HOME, "webaccess:login"),
    ]:
        assert client.get(url).status_code == 200
        Session.objects.filter(session_key=client.session.session_key).update(
            expire_date=timezone.now() - timedelta(seconds=1)
        )
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse(login)}?next={url.replace('/', '%2F')}"


def test_logout(admin_client_a: Client) -> None:
    assert admin_client_a.get(reverse("adminaccess:logout")).status_code == 405
    response = admin_client_a.post(reverse("adminaccess:logout"))
    assert response.status_code == 302
    assert admin_client_a.get(DASHBOARD).status_code == 302


def test_next_only_within_the_area(tenant_a: TenantWorld) -> None:
    client = Client()
    response = client.post(
        reverse("adminaccess:login"),
        {
            "username": tenant_a.owner.username,
            "password": tenant_a.owner_password,
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == DASHBOARD
    client = Client()
    response = client.post(
        reverse("adminaccess:login"),
        {
            "username": tenant_a.owner.username,
            "password": tenant_a.owner_password,
            "next": "/adminaccess/users/",
        },
    )
    assert response["Location"] == "/adminaccess/users/"


# --- separation of the front doors -----------------------------------------------------


def test_admin_gets_403_in_web_access(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    for name in ["webaccess:home", "webaccess:password", "webaccess:mfa"]:
        response = admin_client_a.get(reverse(name))
        assert response.status_code == 403, name
        assert "no access to Web Access" in response.content.decode()


def test_admin_refused_at_web_access_login(tenant_a: TenantWorld) -> None:
    client = Client()
    response = web_login(client, tenant_a.owner.username, tenant_a.owner_password)
    assert response.status_code == 403
    assert "no access to Web Access" in response.content.decode()
    assert not _signed_in(client)


def test_reader_gets_403_in_admin_access(reader_client_a: Client) -> None:
    for name in ["adminaccess:dashboard", "adminaccess:users", "adminaccess:groups"]:
        response = reader_client_a.get(reverse(name))
        assert response.status_code == 403, name
        assert "no access to Admin Access" in response.content.decode()


def test_reader_refused_at_admin_access_login(tenant_a: TenantWorld) -> None:
    client = Client()
    response = admin_login(client, tenant_a.member.username, tenant_a.member_password)
    assert response.status_code == 403
    assert "no access to Admin Access" in response.content.decode()
    assert not _signed_in(client)


def test_user_without_roles_cannot_use_web_access(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        loner, _ = services.create_user(
            "loner", tenant_a.name, password="Solo-Walker-9", must_change_password=False
        )
    client = Client()
    response = web_login(client, loner.username, "Solo-Walker-9")
    assert response.status_code == 403
    assert "no access to Web Access" in response.content.decode()
    assert not _signed_in(client)
    signed_in = client_for(loner)
    assert signed_in.get(WEB_HOME).status_code == 403
    assert signed_in.get(DASHBOARD).status_code == 403


def test_web_access_username_first(tenant_a: TenantWorld) -> None:
    client = Client()
    # Without a username, the password page sends back to the first step.
    response = client.get(reverse("webaccess:login_password"))
    assert response["Location"] == reverse("webaccess:login")
    response = client.post(reverse("webaccess:login"), {"username": tenant_a.member.username})
    assert response["Location"] == reverse("webaccess:login_password")
    page = client.get(reverse("webaccess:login_password"))
    assert page.status_code == 200
    assert tenant_a.member.username in page.content.decode()
