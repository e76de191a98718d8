"""Fast multi-row inserts for the ingestion hot path.

``QuerySet.bulk_create`` spends most of its time preparing values field by field (about
half a millisecond per message row here), which caps a bulk import at a few hundred
messages a second. This inserts plain tuples with ``executemany`` instead (or, when the
caller needs the new rows' ids back, multi-row ``INSERT … RETURNING``), adapting only
the values that need it (datetimes, JSON) through the backend's own adapters, so the
stored values are exactly what the ORM would have written. Tenant ownership is still
enforced: every row gets the active tenant, never another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, models

from mailvault.tenancy.context import current_tenant

# Bound parameters per statement: under SQLite's limit (32,766 since 3.32; the smallest
# build we could meet allows 999) and PostgreSQL's 65,535.
_MAX_PARAMS_SQLITE_OLD = 999
_MAX_PARAMS = 30_000


def _adapter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    ops = connection.ops
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        empty = ops.adapt_json_value([], encoder)  # most list fields of most mail are empty

        def adapt_json(value: Any) -> Any:
            if type(value) is list and not value:
                return empty
            return ops.adapt_json_value(value, encoder)

        return adapt_json
    if isinstance(field, models.DateTimeField):
        adapt_one = _sqlite_datetime() or ops.adapt_datetimefield_value
        last: list[Any] = [None, None]  # rows of a batch share one timestamp: adapt it once

        def adapt_datetime(value: Any) -> Any:
            if not isinstance(value, datetime):
                return value
            if value is not last[0]:
                last[0], last[1] = value, adapt_one(value)
            return last[1]

        return adapt_datetime
    return None


def _sqlite_datetime() -> Callable[[datetime], str] | None:
    """SQLite's datetime adaptation as Django does it (an aware value in the connection's
    time zone, naive, as text), without its per-value settings and time zone lookups:
    2.5 instead of 4.7 µs a value, and every message row of an import has a date of its
    own."""
    if connection.vendor != "sqlite" or not settings.USE_TZ or connection.timezone is not UTC:
        return None

    def adapt(value: datetime) -> str:
        if value.utcoffset() is None:
            return str(value)
        # In UTC, less its "+00:00": what str() gives of the naive value.
        return value.astimezone(UTC).isoformat(" ")[:-6]

    return adapt


def _max_params() -> int:
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        raw = connection.connection
        try:
            return min(_MAX_PARAMS, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        except AttributeError:  # Python < 3.11
            return _MAX_PARAMS_SQLITE_OLD
    return _MAX_PARAMS


def insert_rows(
    model: type[models.Model],
    field_names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (values in ``field_names`` order) for the active tenant; with
    ``ignore_conflicts`` a row that violates a unique constraint is skipped (a concurrent
    writer stored it first), on SQLite and PostgreSQL alike.

    With ``returning`` (column names), the inserted rows' values of those columns come
    back, in no particular order; rows skipped as conflicts are not among them."""
    if not rows:
        return []
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    columns: list[str] = ["tenant_id", *(str(f.column) for f in fields)]  # type: ignore[union-attr]
    # Position in the statement's row (after tenant_id) and adapter of each value that
    # needs one; the others are passed as they are.
    adapted = [(i + 1, a) for i, a in enumerate(_adapter(f) for f in fields) if a]  # type: ignore[arg-type]
    tenant_id = current_tenant().pk
    prepared: list[Sequence[Any]] = []
    for row in rows:
        if len(row) != len(fields):
            raise ValueError(f"a row of {len(row)} values for {len(fields)} fields")
        values = [tenant_id, *row]
        for i, adapt in adapted:
            values[i] = adapt(values[i])
        prepared.append(values)
    quote = connection.ops.quote_name
    one_row = "({})".format(", ".join([_placeholder()] * len(columns)))
    # Only identifiers from the model's own metadata go into the SQL; values are parameters.
    head = "INSERT INTO {} ({}) VALUES ".format(  # noqa: S608
        quote(meta.db_table), ", ".join(quote(c) for c in columns)
    )
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    with connection.cursor() as cursor:
        if not returning:
            _executemany(cursor, head + one_row + tail, prepared)
            return []
        back = [str(meta.get_field(c).column) for c in returning]  # type: ignore[union-attr]
        tail += " RETURNING " + ", ".join(quote(c) for c in back)
        per_statement = max(1, _max_params() // len(columns))
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(prepared), per_statement):
            chunk = prepared[start : start + per_statement]
            _execute(
                cursor,
                head + ", ".join([one_row] * len(chunk)) + tail,
                [value for row in chunk for value in row],
            )
            out.extend(tuple(row) for row in cursor.fetchall())
        return out


def _placeholder() -> str:
    """SQLite's own placeholder: Django's cursor would otherwise turn every ``%s`` of the
    statement into ``?`` with a regular expression, and a multi-row insert of a batch
    has tens of thousands of them (5 % of a bulk import's main thread, measured)."""
    return "?" if connection.vendor == "sqlite" else "%s"


def _execute(cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """Run ``sql`` written with :func:`_placeholder`: on SQLite on the driver's cursor
    itself (errors still become Django's), elsewhere through Django's."""
    if connection.vendor != "sqlite":
        cursor.execute(sql, params)
        return
    with connection.wrap_database_errors:
        sqlite3.Cursor.execute(cursor.cursor, sql, params)


def _executemany(cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if connection.vendor != "sqlite":
        cursor.executemany(sql, rows)
        return
    with connection.wrap_database_errors:
        sqlite3.Cursor.executemany(cursor.cursor, sql, rows)


def refresh_planner_statistics() -> None:
    """Let SQLite's query planner know the tables' real shape (no-op elsewhere).

    Without statistics SQLite prefers the one-column ``tenant_id`` index of every
    tenant-owned table (each query filters by tenant) over the index that fits the query,
    e.g. ``Placement(mailbox, source_ref)``: the lookup then scans every placement of the
    tenant, and an import's resume check slows down as the mailbox grows.
    ``PRAGMA optimize`` analyzes only the tables this connection queried that were never
    analyzed or have grown a lot since, sampling (``analysis_limit``) so that it costs
    milliseconds. PostgreSQL keeps its statistics itself (autovacuum)."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit=1000")
        cursor.execute("PRAGMA optimize")
