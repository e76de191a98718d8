"""The first hour of a new tenant, in a real browser.

The provisioned admin signs in with the printed password, must change it, creates a group
holding Reader (Groups > Add group, then the wrench icon), creates a user in it and hands
over the password shown once; that user signs in to Web Access (username first, then
password), must change the password too, and lands in the empty archive.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from mailvault.accounts.models import User
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import GOOD_PASSWORD, OTHER_PASSWORD, Ui

pytestmark = pytest.mark.browser


def _menu(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name=label, exact=True
    ).click()


@pytest.mark.django_db(transaction=True)
def test_admin_sets_up_a_reader_who_then_signs_in_to_web_access(
    page: Page,
    browser: Browser,
    live_server: object,
    tenant: ProvisionedTenant,
    ui: Ui,
    shots_dir: Path,
) -> None:
    # The printed password works once: the admin is sent to the forced change first.
    ui.admin_sign_in(page, tenant.admin_username, tenant.admin_password)
    expect(page).to_have_url(re.compile(r"/adminaccess/password/$"))
    expect(page.get_by_role("alert")).to_contain_text("You must choose a new password")
    # Nothing else opens before the change.
    page.goto("/adminaccess/users/")
    expect(page).to_have_url(re.compile(r"/adminaccess/password/$"))

    ui.change_password(page, tenant.admin_password, GOOD_PASSWORD)
    expect(page).to_have_url(re.compile(r"/adminaccess/dashboard/$"))
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed.")
    expect(page.get_by_test_id("tenant-name")).to_have_text("Acme Corporation")
    page.screenshot(path=str(shots_dir / "admin-dashboard.png"), full_page=True)

    # Groups > Add group.
    _menu(page, "Groups")
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
    page.get_by_role("link", name="Add group").click()
    page.get_by_label("Name", exact=True).fill("Readers")
    page.get_by_label("Description").fill("Everyone who reads their own mail")
    page.get_by_role("button", name="Save").click()
    # Creating a group leads straight to its roles; leave them empty for now and use the
    # wrench icon of the list, as an admin coming back later would.
    expect(page.get_by_role("heading", name="Permissions of Readers")).to_be_visible()
    _menu(page, "Groups")
    readers_row = page.get_by_role("row").filter(has_text="Readers")
    expect(readers_row).to_contain_text("none")
    readers_row.get_by_role("link", name="Permissions of Readers").click()
    expect(page.get_by_role("heading", name="Permissions of Readers")).to_be_visible()
    reader_box = page.get_by_role("checkbox", name=re.compile(r"^Reader —"))
    expect(reader_box).not_to_be_checked()
    reader_box.check()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/adminaccess/groups/$"))
    expect(page.get_by_role("status")).to_contain_text("Roles of Readers saved.")
    expect(page.get_by_role("row").filter(has_text="Readers")).to_contain_text("Reader")
    page.screenshot(path=str(shots_dir / "admin-groups.png"), full_page=True)

    # Users > Add user, in the new group, with a generated password.
    _menu(page, "Users")
    page.get_by_role("link", name="Add user").click()
    page.get_by_label("Name", exact=True).fill("bob")
    page.get_by_label("Full name").fill("Bob Builder")
    page.get_by_label("Readers").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="User created")).to_be_visible()
    expect(page.get_by_test_id("new-username")).to_have_text("bob@acme")
    bob_password = page.get_by_test_id("new-password").inner_text().strip()
    assert len(bob_password) >= 10
    page.get_by_role("link", name="Back to users").click()
    bob_row = page.get_by_role("row").filter(has_text="bob@acme")
    expect(bob_row).to_contain_text("Readers")
    expect(bob_row).to_contain_text("Bob Builder")
    page.screenshot(path=str(shots_dir / "admin-users.png"), full_page=True)
    # The password was shown once: the list does not show it again.
    expect(page.locator("body")).not_to_contain_text(bob_password)

    # Bob, at another computer: Web Access asks for the username, then the password.
    bob_ctx = browser.new_context(base_url=str(live_server))
    bob_ctx.set_default_timeout(10_000)
    try:
        bob = bob_ctx.new_page()
        bob.goto("/webaccess/")
        expect(bob).to_have_url(re.compile(r"/webaccess/login/"))
        bob.get_by_label("Username").fill("bob@acme")
        bob.get_by_role("button", name="Next").click()
        expect(bob).to_have_url(re.compile(r"/webaccess/login/password/"))
        expect(bob.get_by_text("Signing in as")).to_contain_text("bob@acme")
        bob.get_by_label("Password").fill(bob_password)
        bob.get_by_role("button", name="Sign in").click()

        expect(bob).to_have_url(re.compile(r"/webaccess/password/$"))
        expect(bob.get_by_role("alert")).to_contain_text("You must choose a new password")
        ui.change_password(bob, bob_password, OTHER_PASSWORD)
        expect(bob).to_have_url(re.compile(r"/webaccess/$"))
        expect(bob.get_by_test_id("archive-empty")).to_be_visible()
        bob.screenshot(path=str(shots_dir / "webaccess-archive.png"), full_page=True)
        expect(bob.get_by_role("banner")).to_contain_text("bob@acme")
    finally:
        bob_ctx.close()

    with tenant_context(tenant.tenant):
        bob_user = User.objects.get(username="bob@acme")
        admin = User.objects.get(username=tenant.admin_username)
    assert not bob_user.must_change_password
    assert bob_user.check_password(OTHER_PASSWORD)
    assert not admin.must_change_password
    assert admin.check_password(GOOD_PASSWORD)
