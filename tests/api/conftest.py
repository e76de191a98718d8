"""API fixtures: keys for the tenants' people, clients that send them, a clean
rate-limit cache per test."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.test.utils import override_settings

from factories import TenantWorld, build_world
from mailvault.accounts.models import User
from mailvault.api import keys
from mailvault.tenancy.context import tenant_context


def make_key(
    world: TenantWorld, user: User | None = None, roles: Iterable[str] = ("admin",)
) -> str:
    with tenant_context(world.tenant):
        _, token = keys.create_key("test key", user or world.owner, roles, created_by="test")
    return token


def api_client(token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(headers=headers)


@pytest.fixture(scope="package")
def shared_world(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[TenantWorld]]:
    """The three tenants of tests/conftest.py, built once for all API test modules (the
    suite's budget): same outer transaction, each test in a savepoint inside it."""
    base = tmp_path_factory.mktemp("api-archive")
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


@pytest.fixture(autouse=True)
def _clean_throttle_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin_key_a(tenant_a: TenantWorld) -> str:
    return make_key(tenant_a)


@pytest.fixture
def admin_key_b(tenant_b: TenantWorld) -> str:
    return make_key(tenant_b)


@pytest.fixture
def reader_key_a(tenant_a: TenantWorld) -> str:
    return make_key(tenant_a, tenant_a.member, ["reader"])


@pytest.fixture
def admin_api_a(admin_key_a: str) -> Client:
    return api_client(admin_key_a)


@pytest.fixture
def admin_api_b(admin_key_b: str) -> Client:
    return api_client(admin_key_b)


@pytest.fixture
def reader_api_a(reader_key_a: str) -> Client:
    return api_client(reader_key_a)


@pytest.fixture
def operator_token(db: None) -> str:
    _, token = keys.create_operator_key("test operator")
    return token


@pytest.fixture
def operator_api(operator_token: str) -> Client:
    return api_client(operator_token)
