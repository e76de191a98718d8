"""The negative paths of both front doors, in a real browser: wrong passwords, lockout,
the wrong role at either door, and the last-admin guard as the admin sees it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from pytest_django import Settings

from mailvault.accounts.models import Group
from mailvault.accounts.roles import Role
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ADMIN_GROUP_NAME, ProvisionedTenant

from .conftest import Account, Ui

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG = "The username or password is not correct."
LOCKED = "Too many failed sign-ins"


def _expect_signed_out(page: Page, area: str) -> None:
    """Asking for the area's start page leads back to its sign-in page."""
    page.goto(f"/{area}/")
    expect(page).to_have_url(re.compile(rf"/{area}/login/"))


def test_wrong_password_shows_the_error_and_signs_nobody_in(
    page: Page, ready_admin: Account, reader: Account, ui: Ui
) -> None:
    ui.admin_sign_in(page, ready_admin.username, "Not-The-Password-1")
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    expect(page).to_have_url(re.compile(r"/adminaccess/login/"))
    # The username stays filled in, the password does not.
    expect(page.get_by_label("Username")).to_have_value(ready_admin.username)
    expect(page.get_by_label("Password")).to_have_value("")
    _expect_signed_out(page, "adminaccess")

    ui.web_sign_in(page, reader.username, "Not-The-Password-1")
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    expect(page).to_have_url(re.compile(r"/webaccess/login/password/"))
    _expect_signed_out(page, "webaccess")

    # An unknown user gets exactly the same answer.
    ui.admin_sign_in(page, "nobody@acme", "Not-The-Password-1")
    expect(page.get_by_role("alert")).to_have_text(WRONG)


def test_repeated_failures_lock_the_account(
    page: Page, ready_admin: Account, ui: Ui, settings: Settings
) -> None:
    settings.LOGIN_MAX_FAILURES = 3  # the mechanism, not the production number, is tested
    attempts = settings.LOGIN_MAX_FAILURES
    for _ in range(attempts - 1):
        ui.admin_sign_in(page, ready_admin.username, "Not-The-Password-1")
        expect(page.get_by_role("alert")).to_have_text(WRONG)
    ui.admin_sign_in(page, ready_admin.username, "Not-The-Password-1")
    expect(page.get_by_role("alert")).to_contain_text(LOCKED)

    # Locked means locked: the right password does not get in either, at either door.
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page.get_by_role("alert")).to_contain_text(LOCKED)
    _expect_signed_out(page, "adminaccess")
    ui.web_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page.get_by_role("alert")).to_contain_text(LOCKED)


def test_reader_gets_no_access_to_admin_access(page: Page, reader: Account, ui: Ui) -> None:
    ui.admin_sign_in(page, reader.username, reader.password)
    expect(page.get_by_role("alert")).to_contain_text("Your account has no access to Admin Access.")
    _expect_signed_out(page, "adminaccess")

    # Signed in to Web Access, the Reader still cannot open Admin Access pages.
    ui.web_sign_in(page, reader.username, reader.password)
    expect(page).to_have_url(re.compile(r"/webaccess/$"))
    for path in ("/adminaccess/dashboard/", "/adminaccess/users/", "/adminaccess/groups/"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="No access")).to_be_visible()
        expect(page.get_by_role("main")).to_contain_text("no access to Admin Access")
        expect(page.get_by_role("navigation", name="Admin Access menu")).to_have_count(0)


def test_admin_without_reader_gets_no_access_to_web_access(
    page: Page, ready_admin: Account, ui: Ui
) -> None:
    ui.web_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page.get_by_role("alert")).to_contain_text("Your account has no access to Web Access.")
    _expect_signed_out(page, "webaccess")

    # Signed in to Admin Access, the admin still reads no mail.
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page).to_have_url(re.compile(r"/adminaccess/dashboard/$"))
    response = page.goto("/webaccess/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("no access to Web Access")
    expect(page.get_by_test_id("archive-empty")).to_have_count(0)


def test_last_admin_guard_keeps_the_admin_role(
    page: Page, tenant: ProvisionedTenant, ready_admin: Account, ui: Ui
) -> None:
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name="Groups", exact=True
    ).click()
    page.get_by_role("link", name=f"Permissions of {ADMIN_GROUP_NAME}").click()
    admin_box = page.get_by_role("checkbox", name=re.compile(r"^Admin —"))
    expect(admin_box).to_be_checked()
    admin_box.uncheck()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "This change would leave the tenant without any active user holding the Admin role."
    )
    expect(page.get_by_role("heading", name=f"Permissions of {ADMIN_GROUP_NAME}")).to_be_visible()
    page.goto(page.url)  # a fresh GET: what is stored now, not the refused form
    expect(page.get_by_role("checkbox", name=re.compile(r"^Admin —"))).to_be_checked()
    page.get_by_role("link", name="Cancel").click()
    admins_row = page.get_by_role("row").filter(has_text=ADMIN_GROUP_NAME)
    expect(admins_row.locator(".chip")).to_have_text(["Admin"])

    # Removing the last admin from the group is refused the same way.
    admins_row.get_by_role("link", name=ADMIN_GROUP_NAME, exact=True).click()
    members = page.get_by_role("listitem").filter(has_text=ready_admin.username)
    members.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("without any active user holding the Admin")
    expect(page.get_by_role("listitem").filter(has_text=ready_admin.username)).to_have_count(1)

    with tenant_context(tenant.tenant):
        group = Group.objects.get(name=ADMIN_GROUP_NAME)
        assert group.role_set == {Role.ADMIN}
        assert list(group.members.values_list("username", flat=True)) == [ready_admin.username]
