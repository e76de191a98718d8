"""A small tenant for the retention, hold, deletion and export tests.

Messages go through the real pipeline (store, database, index) into temporary folders;
``put`` can back-date a message's archive date so retention has something to expire.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from pytest_django import Settings

from corpus import archive_settings
from mailvault.accounts import services as accounts
from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox, Message
from mailvault.archive.services import create_mailbox
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant


def mail(
    subject: str,
    body: str = "hello",
    *,
    sender: str = "carol@partner.example",
    to: str = "x@example.com",
    date: str = "Mon, 02 Sep 2024 09:00:00 +0000",
    attachment: tuple[str, str] | None = None,
) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if attachment is None:
        return f"{head}\r\n{body}\r\n".encode()
    name, text = attachment
    return (
        f"{head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        f"--b1\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
        f'--b1\r\nContent-Type: application/octet-stream; name="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{text}\r\n--b1--\r\n'
    ).encode()


def base64_payload(size: int, seed: int = 1) -> str:
    """Incompressible attachment bytes as base64 lines (the store shares such bodies)."""
    data = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    return "\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))


@dataclass
class World:
    tenant: Tenant
    officer: User  # Compliance
    second_officer: User  # Compliance, for four-eyes
    reader: User
    admin: User
    inbox: Mailbox
    other: Mailbox
    extra: dict[str, object] = field(default_factory=dict)

    def put(
        self,
        raw: bytes,
        *targets: Target,
        archived_at: datetime | None = None,
        envelope: list[str] | None = None,
    ) -> Message:
        message = ingest(
            IngestRequest(
                raw,
                Message.Source.FILE,
                targets=list(targets) or [Target(self.inbox, "Inbox")],
                envelope_recipients=envelope or [],
            )
        ).message
        if archived_at is not None:
            Message.objects.filter(pk=message.pk).update(archived_at=archived_at)
            message.refresh_from_db()
        return message


def _user(tenant: Tenant, name: str, role: str) -> User:
    group = accounts.create_group(f"{name} group")
    accounts.set_group_roles(group, [role])
    user, _ = accounts.create_user(name, tenant.name, groups=[group], must_change_password=False)
    return user


@pytest.fixture(name="keeper")
def keeper_fixture(db: None, settings: Settings, tmp_path: Path) -> Iterator[World]:
    """Import ``keeper_fixture`` into a test module to use the ``keeper`` fixture."""
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    settings.MAILVAULT_EXPORT_DIR = tmp_path / "exports"
    tenant = provision_tenant("keeper").tenant
    with tenant_context(tenant):
        reader = _user(tenant, "rita", Role.READER)
        yield World(
            tenant=tenant,
            officer=_user(tenant, "olga", Role.COMPLIANCE),
            second_officer=_user(tenant, "otto", Role.COMPLIANCE),
            reader=reader,
            admin=_user(tenant, "adam", Role.ADMIN),
            inbox=create_mailbox("rita@keeper", owner=reader),
            other=create_mailbox("sales@keeper"),
        )
