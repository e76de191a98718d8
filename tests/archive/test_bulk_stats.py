"""SQLite's planner statistics: without them a tenant-scoped lookup scans the tenant."""

from __future__ import annotations

import pytest
from django.db import connection

from factories import TenantWorld
from mailvault.archive.bulk import refresh_planner_statistics
from mailvault.archive.models import Placement
from mailvault.archive.services import folder_for_path
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def _plan(sql: str, params: list[object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " | ".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.single_db  # SQLite's planner (PostgreSQL keeps statistics itself)
def test_source_ref_lookup_uses_its_index_once_statistics_exist(tenant_a: TenantWorld):
    with tenant_context(tenant_a.tenant):
        first = Placement.objects.filter(mailbox=tenant_a.mailbox).first()
        assert first is not None
        # A folder holds a message once: one placement of the same message per folder.
        rows = [
            Placement(
                message=first.message,
                mailbox=tenant_a.mailbox,
                folder=folder_for_path(tenant_a.mailbox, f"F/{i}"),
                source_ref=f"ref-{i}",
            )
            for i in range(300)
        ]
        Placement.objects.bulk_create(rows)
        assert connection.vendor == "sqlite"
        query = Placement.objects.filter(
            mailbox=tenant_a.mailbox, source_ref__in=["ref-1", "ref-2"]
        ).values_list("message_id", flat=True)
        sql, params = query.query.sql_with_params()
        refresh_planner_statistics()
        plan = _plan(sql, list(params))
        assert "source_ref" in plan, plan
        assert len(list(query)) == 2
