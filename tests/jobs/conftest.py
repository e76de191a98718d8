"""Fixtures of the jobs tests: a tenant in context, the test process types, PG helpers.

PostgreSQL-only tests (worker processes racing, SIGKILL, hard timeout) use the
``pg_only`` fixture: they run when the test database is PostgreSQL
(DATABASE_URL=postgres://…). On SQLite they are skipped locally; under CI=true they
fail loudly instead, unless MAILVAULT_SKIP_PG_TESTS=1 says that this CI job is the
SQLite one and another job runs the suite on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connection

from jobs import jobtypes  # noqa: F401 - registers the test process types
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


@pytest.fixture
def tenant(db: None) -> Iterator[Tenant]:
    t = Tenant.objects.create(name="jobs-a")
    with tenant_context(t):
        yield t


@pytest.fixture
def pg_only() -> None:
    if connection.vendor == "postgresql":
        return
    if os.environ.get("CI") == "true" and os.environ.get("MAILVAULT_SKIP_PG_TESTS") != "1":
        pytest.fail(
            "PostgreSQL-only test on SQLite under CI: run with DATABASE_URL=postgres://… "
            "or set MAILVAULT_SKIP_PG_TESTS=1 in the job that is the SQLite one."
        )
    pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")


def pg_test_database_url() -> str:
    """A URL of the test database, for worker processes started by the tests."""
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s.get('USER') or 'postgres'}{password}@{host}:{port}/{s['NAME']}"
