"""TOTP: enrolment through the pages, sign-in with a code, replay, wrong codes, and the
"trust this device" cookie with what invalidates it."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from factories import TenantWorld, admin_login, client_for, web_login
from mailvault.accounts import mfa
from mailvault.accounts.login import LOCKED
from mailvault.accounts.models import User
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

AREAS = {
    "admin": {"ns": "adminaccess", "home": "/adminaccess/dashboard/"},
    "web": {"ns": "webaccess", "home": "/webaccess/"},
}


def _code(secret: str, steps_ahead: int = 0) -> str:
    """The code of the current step (or one step ahead, which drift tolerance accepts)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def _wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + 30 * d) for d in (-2, -1, 0, 1, 2)}
    candidate = 0
    while f"{candidate:06d}" in valid:
        candidate += 1
    return f"{candidate:06d}"


def _reload(user: User) -> User:
    return User.unscoped.get(pk=user.pk)


def _enrol(client: Client, area: str) -> str:
    """Turn TOTP on through the account page; returns the secret the page showed."""
    url = reverse(f"{AREAS[area]['ns']}:mfa")
    assert client.post(url, {"action": "start"}).status_code == 302
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "<svg" in body  # the QR code
    match = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', body)
    assert match, "the page shows the key for manual entry"
    secret = match.group(1)
    response = client.post(url, {"action": "confirm", "code": _code(secret)})
    assert response.status_code == 302
    assert "is <strong>on</strong>" in client.get(url).content.decode()
    return secret


def _sign_in(area: str, world: TenantWorld, client: Client) -> object:
    if area == "admin":
        return admin_login(client, world.owner.username, world.owner_password)
    return web_login(client, world.member.username, world.member_password)


def _person(area: str, world: TenantWorld) -> User:
    return world.owner if area == "admin" else world.member


def _allow_new_codes(user: User) -> None:
    """Forget the last accepted step, so that the next test login can use a fresh code
    (real users simply wait 30 seconds)."""
    User.unscoped.filter(pk=user.pk).update(totp_last_step=0)


@pytest.mark.parametrize("area", AREAS)
def test_enrolment_and_sign_in_with_code(tenant_a: TenantWorld, area: str) -> None:
    person = _person(area, tenant_a)
    secret = _enrol(client_for(person), area)
    stored = _reload(person)
    assert stored.totp_enabled and stored.totp_secret == secret

    client = Client()
    response = _sign_in(area, tenant_a, client)
    totp_url = reverse(f"{AREAS[area]['ns']}:totp")
    assert response.status_code == 302
    assert response["Location"] == totp_url
    # Password alone signs nobody in.
    assert "_auth_user_id" not in client.session
    assert client.get(AREAS[area]["home"]).status_code == 302
    assert client.get(totp_url).status_code == 200

    wrong = client.post(totp_url, {"code": _wrong_code(secret)})
    assert wrong.status_code == 401
    assert "The code is not correct." in wrong.content.decode()
    assert "_auth_user_id" not in client.session

    code = _code(secret, 1)
    response = client.post(totp_url, {"code": code})
    assert response.status_code == 302
    assert response["Location"] == AREAS[area]["home"]
    assert client.get(AREAS[area]["home"]).status_code == 200

    # The same code a second time is refused (replay).
    replay = Client()
    _sign_in(area, tenant_a, replay)
    response = replay.post(totp_url, {"code": code})
    assert response.status_code == 401
    assert "_auth_user_id" not in replay.session


def test_enrolment_wrong_code_keeps_mfa_off(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    url = reverse("adminaccess:mfa")
    admin_client_a.post(url, {"action": "start"})
    secret = _reload(tenant_a.owner).totp_secret
    response = admin_client_a.post(url, {"action": "confirm", "code": _wrong_code(secret)})
    assert response.status_code == 200
    assert "The code is not correct" in response.content.decode()
    assert not _reload(tenant_a.owner).totp_enabled
    # Still off: the password alone signs in.
    assert (
        admin_login(Client(), tenant_a.owner.username, tenant_a.owner_password)["Location"]
        == AREAS["admin"]["home"]
    )


def test_totp_page_without_password_step_redirects(tenant_a: TenantWorld) -> None:
    for area in AREAS:
        response = Client().get(reverse(f"{AREAS[area]['ns']}:totp"))
        assert response.status_code == 302
        assert response["Location"] == reverse(f"{AREAS[area]['ns']}:login")
        response = Client().post(reverse(f"{AREAS[area]['ns']}:totp"), {"code": "123456"})
        assert response.status_code == 302


def test_wrong_codes_lock_the_account(tenant_a: TenantWorld) -> None:
    secret = _enrol(client_for(tenant_a.owner), "admin")
    client = Client()
    admin_login(client, tenant_a.owner.username, tenant_a.owner_password)
    totp_url = reverse("adminaccess:totp")
    statuses = [
        client.post(totp_url, {"code": _wrong_code(secret)}).status_code
        for _ in range(settings.LOGIN_MAX_FAILURES)
    ]
    assert statuses[-1] == 403
    # Locked now, even with the right code and password.
    again = Client()
    response = admin_login(again, tenant_a.owner.username, tenant_a.owner_password)
    assert response.status_code == 403
    assert LOCKED in response.content.decode()


@pytest.mark.parametrize("area", AREAS)
def test_trusted_device_skips_totp(tenant_a: TenantWorld, area: str) -> None:
    person = _person(area, tenant_a)
    secret = _enrol(client_for(person), area)
    totp_url = reverse(f"{AREAS[area]['ns']}:totp")
    client = Client()
    _sign_in(area, tenant_a, client)
    response = client.post(totp_url, {"code": _code(secret, 1), "trust_device": "on"})
    assert response.status_code == 302
    cookie = response.cookies[mfa.trust_cookie_name(person)]
    assert cookie["httponly"]
    assert int(cookie["max-age"]) == 14 * 86400

    # Next time, on this device: no code asked.
    client.post(reverse(f"{AREAS[area]['ns']}:logout"))
    response = _sign_in(area, tenant_a, client)
    assert response["Location"] == AREAS[area]["home"]
    assert client.get(AREAS[area]["home"]).status_code == 200
    # Another device (no cookie) still needs the code.
    assert _sign_in(area, tenant_a, Client())["Location"] == totp_url


def test_no_trust_cookie_without_the_box(tenant_a: TenantWorld) -> None:
    secret = _enrol(client_for(tenant_a.owner), "admin")
    client = Client()
    admin_login(client, tenant_a.owner.username, tenant_a.owner_password)
    response = client.post(reverse("adminaccess:totp"), {"code": _code(secret, 1)})
    assert response.status_code == 302
    assert mfa.trust_cookie_name(tenant_a.owner) not in response.cookies


def test_trust_cookie_is_per_user(tenant_a: TenantWorld) -> None:
    """A token made for one user does not trust the device for another."""
    secret = _enrol(client_for(tenant_a.owner), "admin")
    assert secret
    with tenant_context(tenant_a.tenant):
        token_of_member = mfa.make_trust_token(User.objects.get(pk=tenant_a.member.pk))
    client = Client()
    client.cookies[mfa.trust_cookie_name(tenant_a.owner)] = token_of_member
    response = admin_login(client, tenant_a.owner.username, tenant_a.owner_password)
    assert response["Location"] == reverse("adminaccess:totp")
    client.cookies[mfa.trust_cookie_name(tenant_a.owner)] = "forged:token"
    response = admin_login(Client(), tenant_a.owner.username, tenant_a.owner_password)
    assert response["Location"] == reverse("adminaccess:totp")


def _trusted_member_client(tenant_a: TenantWorld) -> tuple[Client, str]:
    secret = _enrol(client_for(tenant_a.member), "web")
    client = Client()
    web_login(client, tenant_a.member.username, tenant_a.member_password)
    response = client.post(
        reverse("webaccess:totp"), {"code": _code(secret, 1), "trust_device": "on"}
    )
    assert response.status_code == 302
    client.post(reverse("webaccess:logout"))
    assert (
        web_login(client, tenant_a.member.username, tenant_a.member_password)["Location"]
        == AREAS["web"]["home"]
    )
    client.post(reverse("webaccess:logout"))
    return client, secret


def test_reset_mfa_invalidates_trust_cookie(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    client, _ = _trusted_member_client(tenant_a)
    response = admin_client_a.post(reverse("adminaccess:user_reset_mfa", args=[tenant_a.member.pk]))
    assert response.status_code == 302
    member = _reload(tenant_a.member)
    assert not member.totp_enabled and not member.totp_secret
    # The member sets TOTP up again; the old cookie must not skip the new code.
    with tenant_context(tenant_a.tenant):
        secret = mfa.start_enrolment(member)
        assert mfa.confirm_enrolment(member, _code(secret))
    response = web_login(client, tenant_a.member.username, tenant_a.member_password)
    assert response["Location"] == reverse("webaccess:totp")


def test_password_reset_invalidates_trust_cookie(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    client, secret = _trusted_member_client(tenant_a)
    response = admin_client_a.post(
        reverse("adminaccess:user_reset_password", args=[tenant_a.member.pk])
    )
    password = response.context["password"]
    first = client.post(reverse("webaccess:login"), {"username": tenant_a.member.username})
    assert first.status_code == 302
    response = client.post(reverse("webaccess:login_password"), {"password": password})
    assert response["Location"] == reverse("webaccess:totp")
    _allow_new_codes(tenant_a.member)
    response = client.post(reverse("webaccess:totp"), {"code": _code(secret)})
    assert response.status_code == 302
    # Signed in, and sent to change the password first.
    assert client.get("/webaccess/")["Location"] == reverse("webaccess:password")


def test_turning_mfa_off_yourself(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    _enrol(admin_client_a, "admin")
    # Without the current password (a session left open) nothing changes.
    response = admin_client_a.post(reverse("adminaccess:mfa"), {"action": "disable"})
    assert response.status_code == 302
    assert _reload(tenant_a.owner).totp_enabled
    response = admin_client_a.post(
        reverse("adminaccess:mfa"),
        {"action": "disable", "password": tenant_a.owner_password},
    )
    assert response.status_code == 302
    assert not _reload(tenant_a.owner).totp_enabled
    assert (
        admin_login(Client(), tenant_a.owner.username, tenant_a.owner_password)["Location"]
        == AREAS["admin"]["home"]
    )


def test_verify_code_window_and_replay(tenant_a: TenantWorld) -> None:
    """Service level: one step of drift either way, never older steps, never twice."""
    with tenant_context(tenant_a.tenant):
        user = User.objects.get(pk=tenant_a.member.pk)
        secret = mfa.start_enrolment(user)
        totp = pyotp.TOTP(secret)
        now = 1_800_000_000.0
        step = int(now // 30)
        assert not mfa.verify_code(user, totp.generate_otp(step - 2), at=now)
        assert not mfa.verify_code(user, totp.generate_otp(step + 2), at=now)
        assert mfa.verify_code(user, totp.generate_otp(step - 1), at=now)
        assert not mfa.verify_code(user, totp.generate_otp(step - 1), at=now)  # replay
        assert mfa.verify_code(
            user, " " + totp.generate_otp(step)[:3] + " " + totp.generate_otp(step)[3:], at=now
        )
        assert not mfa.verify_code(user, totp.generate_otp(step), at=now)  # replay
        assert not mfa.verify_code(user, "abcdef", at=now)
        assert mfa.verify_code(user, totp.generate_otp(step + 1), at=now)
        assert _reload(user).totp_last_step == step + 1


def test_trust_token_expires(tenant_a: TenantWorld, settings: object) -> None:
    with tenant_context(tenant_a.tenant):
        user = User.objects.get(pk=tenant_a.member.pk)
        token = mfa.make_trust_token(user)
        assert mfa.is_trusted(user, token)
        settings.MFA_TRUST_DAYS = 0  # type: ignore[attr-defined]
        time.sleep(1.1)
        assert not mfa.is_trusted(user, token)
        settings.MFA_TRUST_DAYS = 14  # type: ignore[attr-defined]
        user.rotate_device_trust()
        assert not mfa.is_trusted(user, token)
        assert not mfa.is_trusted(user, None)
