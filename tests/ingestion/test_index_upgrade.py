"""An index written with an older schema is rebuilt from the store at `mailvault run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_django import Settings

from corpus import archive_settings
from mailvault.archive.models import Message
from mailvault.archive.services import create_mailbox
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.reconcile import upgrade_indexes
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.search import IndexSchemaMismatch, Scope, TenantIndex
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import provision_tenant


def test_an_index_of_an_older_schema_is_rebuilt(
    db: None, settings: Settings, tmp_path: Path
) -> None:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    tenant = provision_tenant("upgraded").tenant
    with tenant_context(tenant):
        box = create_mailbox("ann@upgraded")
        raw = b"From: a@x\r\nSubject: kept\r\n\r\nthe quarterly numbers\r\n"
        message = ingest(IngestRequest(raw, Message.Source.FILE, targets=[Target(box)])).message
    index = TenantIndex.open(tenant.pk)
    # What a previous release left: the same directory, marked with schema 1.
    (index.path / "mailvault-index.json").write_text(json.dumps({"schema_version": 1}))
    TenantIndex._instances.clear()
    with pytest.raises(IndexSchemaMismatch):
        TenantIndex.open(tenant.pk)
    said: list[str] = []
    assert upgrade_indexes(said.append) == 1
    assert "rebuilding it now" in said[0] and said[1] == "upgraded: 1 messages indexed"
    result = TenantIndex.open(tenant.pk).search(
        "quarterly", Scope.whole_tenant(), text_loader=lambda ids: {}
    )
    assert [h.message_id for h in result.hits] == [message.pk]
    assert upgrade_indexes(said.append) == 0  # nothing left to upgrade
