"""Repository-wide pytest rules.

Under CI=true no test may skip: a skip there means a component the suite needs was not
installed or started, and CI must say so by failing instead of passing quietly.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the SQLite run of ``make test`` (MAILVAULT_SKIP_PG_TESTS=1) the PostgreSQL-only
    tests are deselected, not skipped: the PostgreSQL run right after runs them."""
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    if on_postgres or os.environ.get("MAILVAULT_SKIP_PG_TESTS") != "1":
        return
    keep = [item for item in items if "pg_only" not in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if "pg_only" in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") == "true" and _skipped:
        print("\nCI=true and tests were skipped (a component is missing):")
        for line in _skipped:
            print(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
