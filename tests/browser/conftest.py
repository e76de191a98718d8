"""Fixtures for the browser tests: Debian's Chromium driven by Playwright against a live
Django server (pytest-django's ``live_server``: a threaded WSGI server on the test
database).

Playwright is only ever pointed at ``/usr/bin/chromium``; nothing is downloaded. Each test
gets a fresh browser context (own cookies) and a freshly provisioned tenant.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_django import Settings

# Playwright's sync API keeps an asyncio loop in the test thread; the ORM calls the tests
# make for their setup are plain synchronous calls all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from mailvault.accounts import services
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant, provision_tenant

CHROMIUM = os.environ.get("MAILVAULT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS_DIR = Path(os.environ.get("MAILVAULT_SHOTS_DIR", "/tmp/mv-shots"))
# A password that satisfies the rules of features.md for every username used here.
GOOD_PASSWORD = "Tr4vel-Kite-2931"
OTHER_PASSWORD = "Qu1et-Harbor-8475"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None and os.environ.get("CI") != "true":
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _browser_settings(settings: Settings) -> None:
    """Plain static storage (no collectstatic manifest needed; the live server serves
    ``/static/`` from the app finders) and a fast password hasher: the tests are about the
    pages, not about PBKDF2's cost."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, live_server: object) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=str(live_server), viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def tenant() -> ProvisionedTenant:
    """A freshly provisioned tenant; its admin still has to change the printed password."""
    return provision_tenant("acme", display_name="Acme Corporation")


@dataclass(frozen=True)
class Account:
    username: str
    password: str


def make_user(
    provisioned: ProvisionedTenant, local_part: str, roles: list[Role], *, password: str
) -> Account:
    """A user in a new group holding ``roles``, whose password needs no change."""
    with tenant_context(provisioned.tenant):
        group = Group.objects.create(name=f"{local_part} group")
        for role in roles:
            GroupRole.objects.create(group=group, role=role)
        user, _ = services.create_user(
            local_part,
            provisioned.tenant.name,
            password=password,
            groups=[group],
            must_change_password=False,
        )
    return Account(user.username, password)


@pytest.fixture
def ready_admin(tenant: ProvisionedTenant) -> Account:
    """The provisioned admin, with its first-login password change already done."""
    with tenant_context(tenant.tenant):
        admin = User.objects.get(username=tenant.admin_username)
        services.change_own_password(admin, tenant.admin_password, GOOD_PASSWORD)
    return Account(tenant.admin_username, GOOD_PASSWORD)


@pytest.fixture
def reader(tenant: ProvisionedTenant) -> Account:
    return make_user(tenant, "rita", [Role.READER], password=OTHER_PASSWORD)


@pytest.fixture
def shots_dir() -> Path:
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SHOTS_DIR


class Ui:
    """The steps every browser test repeats, written once."""

    @staticmethod
    def admin_sign_in(page: Page, username: str, password: str) -> None:
        page.goto("/adminaccess/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    @staticmethod
    def web_sign_in(page: Page, username: str, password: str) -> None:
        """Web Access asks for the username first, then for the password."""
        page.goto("/webaccess/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_role("button", name="Next").click()
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    @staticmethod
    def change_password(page: Page, old: str, new: str) -> None:
        page.get_by_label("Current password").fill(old)
        page.get_by_label("New password", exact=True).fill(new)
        page.get_by_label("Repeat new password").fill(new)
        page.get_by_role("button", name="Change password").click()


@pytest.fixture
def ui() -> Ui:
    return Ui()
