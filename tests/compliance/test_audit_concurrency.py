"""Audit appends from several database connections at once (PostgreSQL row locks).

A module of its own: it commits (transactional test), which the module-wide world of
the other audit tests, held in one open transaction, would not allow.
"""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection

from mailvault.compliance import audit
from mailvault.compliance.models_audit import AuditEntry
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


@pytest.fixture
def pg_only() -> None:
    """PostgreSQL only (deselected in the SQLite pass by the root conftest)."""
    if connection.vendor == "postgresql":
        return
    if os.environ.get("CI") == "true" and os.environ.get("MAILVAULT_SKIP_PG_TESTS") != "1":
        pytest.fail("PostgreSQL-only test on SQLite under CI: run with DATABASE_URL=postgres://…")
    pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_chain(pg_only: None) -> None:
    """Appends from several connections at once are serialised on the chain head."""
    tenant = Tenant.objects.create(name="race")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                audit.record(f"race.{n}", tenant=tenant, message=str(i))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tenant_context(tenant):
        seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 46))
    result = audit.validate(tenant)
    assert result.intact and result.checked == 45
