"""Fixtures of the non-browser suite: three tenants, clients signed in as their people.

Every tenant has an owner (its provisioned Admin, password changed), a member (a
Reader) and an outsider view (the member of the next tenant). Password hashing is MD5
here so that the suite stays fast; domain verification uses :class:`FakeTxtResolver`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.test.utils import override_settings

from factories import RESOLVER_PATH, FakeTxtResolver, TenantWorld, build_world, client_for

FAST_SETTINGS = {
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    "MAILVAULT_DNS_RESOLVER": RESOLVER_PATH,
    # Templates use {% static %}; the manifest storage would need a collectstatic first.
    "STORAGES": {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    },
}


@pytest.fixture(scope="session", autouse=True)
def _fast_settings() -> Iterator[None]:
    """Session-wide (so module-scoped data is built with them too)."""
    with override_settings(**FAST_SETTINGS):
        yield


@pytest.fixture
def dns_records() -> Iterator[dict[str, list[str]]]:
    """The TXT records the fake resolver answers with; the test fills it."""
    FakeTxtResolver.records = {}
    yield FakeTxtResolver.records
    FakeTxtResolver.records = {}


@pytest.fixture(scope="module")
def shared_world(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[TenantWorld]]:
    """Three tenants built once per module inside an outer transaction that is rolled
    back at the end of the module; every test runs in a savepoint inside it, so each test
    starts from exactly this state (like Django's ``TestCase.setUpTestData``)."""
    # Each module gets its own blob store, index and master key: the database rows that
    # go with them (e.g. tenant data keys) are rolled back at the end of the module.
    base = tmp_path_factory.mktemp("archive")
    with (
        override_settings(
            MAILVAULT_STORE_DIR=base / "store",
            MAILVAULT_INDEX_DIR=base / "index",
            MAILVAULT_MASTER_KEY_FILE=base / "master.key",
        ),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        yield build_world()
        transaction.set_rollback(True)


@pytest.fixture
def world(db: None, shared_world: list[TenantWorld]) -> list[TenantWorld]:
    """The three tenants, as fresh Python objects (a test may change them freely: the
    database side is rolled back after each test)."""
    return copy.deepcopy(shared_world)


@pytest.fixture
def tenant_a(world: list[TenantWorld]) -> TenantWorld:
    return world[0]


@pytest.fixture
def tenant_b(world: list[TenantWorld]) -> TenantWorld:
    return world[1]


@pytest.fixture
def tenant_c(world: list[TenantWorld]) -> TenantWorld:
    return world[2]


@pytest.fixture
def admin_client_a(tenant_a: TenantWorld) -> Client:
    """Tenant A's owner (Admin) signed in."""
    return client_for(tenant_a.owner)


@pytest.fixture
def reader_client_a(tenant_a: TenantWorld) -> Client:
    """Tenant A's member (Reader) signed in."""
    return client_for(tenant_a.member)


@pytest.fixture
def admin_client_b(tenant_b: TenantWorld) -> Client:
    return client_for(tenant_b.owner)


@pytest.fixture
def reader_client_b(tenant_b: TenantWorld) -> Client:
    return client_for(tenant_b.member)


@pytest.fixture
def outsider_client_a(tenant_a: TenantWorld) -> Client:
    """Signed in as a user of another tenant (tenant B's member), seen from tenant A."""
    assert tenant_a.outsider is not None
    return client_for(tenant_a.outsider)


@pytest.fixture
def client_as(db: None) -> Callable[..., Client]:
    """``client_as(user)``: a client signed in as any user (TOTP skipped)."""
    return client_for
