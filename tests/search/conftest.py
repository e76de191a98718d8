"""Fixtures of the search tests: fresh per-tenant indexes in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailvault.search import Address, IndexDocument, TenantIndex
from mailvault.search import index as index_module


def make_doc(message_id: int, **kw: Any) -> IndexDocument:
    kw.setdefault("mailbox_ids", [1])
    kw.setdefault("date", datetime(2024, 1, 1, 12, tzinfo=UTC))
    kw.setdefault("sender", Address("someone@example.net", "Some One"))
    return IndexDocument(message_id=message_id, **kw)


@pytest.fixture(autouse=True)
def no_archive_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use the index as a library: phrase checks get only the texts a test
    hands them, never the archive's (the Django app's default loader)."""
    monkeypatch.setattr(index_module, "default_text_loader", None)


@pytest.fixture
def open_index(tmp_path: Path) -> Callable[[object], TenantIndex]:
    def _open(tenant_id: object = 1) -> TenantIndex:
        return TenantIndex.open(tenant_id, base_dir=tmp_path / "index")

    return _open


@pytest.fixture
def index(open_index: Callable[[object], TenantIndex]) -> TenantIndex:
    return open_index(1)
