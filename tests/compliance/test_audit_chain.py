"""The audit log's hash chain: appends, validation, tamper detection, append-only."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from factories import TenantWorld
from mailvault.compliance import audit
from mailvault.compliance.audit import chain, search
from mailvault.compliance.models_audit import (
    AppendOnlyError,
    AuditChainHead,
    AuditEntry,
    OperatorAuditEntry,
)
from mailvault.tenancy.context import tenant_context


@pytest.fixture
def pg_only() -> None:
    """PostgreSQL only (deselected in the SQLite pass by the root conftest)."""
    if connection.vendor == "postgresql":
        return
    if os.environ.get("CI") == "true" and os.environ.get("MAILVAULT_SKIP_PG_TESTS") != "1":
        pytest.fail("PostgreSQL-only test on SQLite under CI: run with DATABASE_URL=postgres://…")
    pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")


def _fill(world: TenantWorld, n: int) -> list[AuditEntry]:
    entries = []
    with tenant_context(world.tenant):
        for i in range(n):
            entry = audit.record(
                "test.event", actor=f"actor{i}@x", object=f"thing={i}", message=f"event {i}"
            )
            assert isinstance(entry, AuditEntry)
            entries.append(entry)
    return entries


def test_entries_chain_per_tenant(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    a = _fill(tenant_a, 3)
    b = _fill(tenant_b, 2)
    base_a = a[0].seq - 1  # the fixture's world may already hold entries (sign-ins)
    assert [e.seq - base_a for e in a] == [1, 2, 3]
    assert a[1].prev_hash == a[0].entry_hash and a[2].prev_hash == a[1].entry_hash
    assert b[0].tenant_id == tenant_b.tenant.pk
    # Tenant B's chain does not continue tenant A's.
    assert b[0].prev_hash != a[-1].entry_hash
    result = audit.validate(tenant_a.tenant)
    assert result.intact and result.checked == a[-1].seq
    operator = audit.record("operator.event", tenant=None, actor="root@host")
    assert isinstance(operator, OperatorAuditEntry)
    assert audit.validate(None).intact


def test_tampered_row_is_named(tenant_a: TenantWorld) -> None:
    """Change one row directly in the database: validation names exactly that entry."""
    entries = _fill(tenant_a, 5)
    victim = entries[2]
    table = AuditEntry._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # a superuser gets past the trigger
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            f"UPDATE {table} SET message = %s WHERE id = %s", ["nothing happened", victim.pk]
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    result = audit.validate(tenant_a.tenant)
    assert not result.intact
    assert result.broken_seq == victim.seq
    assert result.broken_entry is not None and result.broken_entry.pk == victim.pk
    assert "changed" in result.problem
    assert result.checked == victim.seq - 1
    # The operator's console says the same.
    with pytest.raises(CommandError, match=f"broken at entry #{victim.seq}:"):
        call_command("audit", "validate", "--tenant", tenant_a.name)
    out = io.StringIO()
    call_command("audit", "validate", "--tenant", "tenant-b", stdout=out)
    assert "intact" in out.getvalue()


def test_removed_and_truncated_entries_are_found(tenant_a: TenantWorld) -> None:
    entries = _fill(tenant_a, 4)
    table = AuditEntry._meta.db_table

    def raw_delete(pk: int) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL mailvault.audit_purge = 'on'")
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])

    raw_delete(entries[-1].pk)  # cut off the end: only the chain head knows
    result = audit.validate(tenant_a.tenant)
    assert not result.intact and result.broken_seq == entries[-1].seq
    assert "missing at the end" in result.problem
    raw_delete(entries[1].pk)  # a hole in the middle
    result = audit.validate(tenant_a.tenant)
    assert not result.intact and result.broken_seq == entries[1].seq
    assert "missing" in result.problem


def test_python_refuses_update_and_delete(tenant_a: TenantWorld) -> None:
    (entry,) = _fill(tenant_a, 1)
    with tenant_context(tenant_a.tenant):
        entry.message = "rewritten"
        with pytest.raises(AppendOnlyError):
            entry.save()
        with pytest.raises(AppendOnlyError):
            entry.delete()
    assert audit.validate(tenant_a.tenant).intact


def test_postgres_trigger_refuses_update_and_delete(pg_only: None, tenant_a: TenantWorld) -> None:
    (entry,) = _fill(tenant_a, 1)
    for statement in (
        "UPDATE compliance_auditentry SET message = 'x' WHERE id = %s",
        "DELETE FROM compliance_auditentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [entry.pk])
    # Queryset-level bulk changes (which skip save()) meet the trigger too.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.unscoped.filter(pk=entry.pk).update(message="y")
    assert audit.validate(tenant_a.tenant).intact


def test_validation_pages_through_long_chains(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain, "PAGE", 3)
    entries = _fill(tenant_a, 8)
    assert audit.validate(tenant_a.tenant).intact
    head = AuditChainHead.objects.get(key=chain.chain_key(tenant_a.tenant))
    assert (head.last_seq, head.last_hash) == (entries[-1].seq, entries[-1].entry_hash)


def test_search_and_csv_per_utc_day(tenant_a: TenantWorld) -> None:
    day1 = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    day2 = day1 + timedelta(microseconds=1)  # the next UTC day
    with tenant_context(tenant_a.tenant):
        audit.record("test.alpha", actor="ann@x", message='first, "quoted"', time=day1)
        audit.record("test.beta", actor="bob@x", message="second", success=False, time=day2)
        audit.record("test.beta", actor="ann@x", message="third line\nwrapped", time=day2)
        found = list(search.search(search.AuditFilter(activity="test.beta")))
        assert [e.message for e in found] == ["third line\nwrapped", "second"]
        assert [e.actor for e in search.search(search.AuditFilter(actor="BOB"))] == ["bob@x"]
        assert len(search.search(search.AuditFilter(text="quoted"))) == 1
        assert len(search.search(search.AuditFilter(success=False, activity="test.beta"))) == 1
        since = search.search(search.AuditFilter(since=day2, until=day2 + timedelta(hours=1)))
        assert {e.activity for e in since} == {"test.beta"}

        rows = list(csv.reader(io.StringIO("".join(search.csv_lines(date(2026, 3, 1))))))
        assert rows[0][:5] == ["seq", "time", "actor", "actor_type", "activity"]
        assert [r[4] for r in rows[1:]] == ["test.alpha"]
        assert rows[1][8] == 'first, "quoted"'
        rows2 = list(csv.reader(io.StringIO("".join(search.csv_lines(date(2026, 3, 2))))))
        assert [r[8] for r in rows2[1:]] == ["second", "third line\nwrapped"]
        assert rows2[1][7] == "false"

        out = io.StringIO()
        call_command(
            "audit", "export", "--tenant", tenant_a.name, "--day", "2026-03-02", stdout=out
        )
        assert out.getvalue() == "".join(search.csv_lines(date(2026, 3, 2)))

        archive = zipfile.ZipFile(search.zip_of_days(date(2026, 2, 28), date(2026, 3, 3)))
        assert archive.namelist() == ["audit-2026-03-01.csv", "audit-2026-03-02.csv"]
        assert "third line" in archive.read("audit-2026-03-02.csv").decode()
