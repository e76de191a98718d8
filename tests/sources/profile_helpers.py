"""Building and running archiving profiles against the test Dovecot."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from imapclient import IMAPClient

from factories import TenantWorld
from mailvault.accounts.secrets import Secret, create_secret
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import execute_run
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services
from mailvault.tenancy.context import tenant_context
from sources.dovecot_server import Dovecot


@pytest.fixture
def world(db: None, shared_world: list[TenantWorld]) -> list[TenantWorld]:
    """The three tenants of tests/conftest.py (tests/sources/conftest.py has a ``world``
    of its own for the SMTP tests; modules that use this one import it)."""
    return copy.deepcopy(shared_world)


@dataclass
class Account:
    """One Dovecot user of a test, with an IMAP client signed in to fill the mailbox."""

    server: Dovecot
    user: str
    password: str
    imap: IMAPClient

    def append(
        self, folder: str, subject: str, *, flags: tuple[bytes, ...] = (), body: str = ""
    ) -> bytes:
        raw = (
            f"From: Alice <alice@example.com>\r\nTo: {self.user}\r\nSubject: {subject}\r\n"
            "Date: Tue, 01 Oct 2024 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\n"
            f"{body or 'Hello ' + subject}\r\n"
        ).encode()
        self.imap.append(folder, raw, flags=flags)
        return raw


def make_profile(
    world: TenantWorld, account: Account, *, password: str | None = None, **fields: Any
) -> ArchivingProfile:
    """An IMAP (or POP3) single-mailbox profile for ``account`` into the world's mailbox."""
    server = account.server
    with tenant_context(world.tenant):
        secret = create_secret(
            f"cred {account.user} {password or ''}",
            Secret.Kind.BASIC,
            username=account.user,
            password=password or account.password,
        )
        kind = fields.pop("type", ArchivingProfile.Type.IMAP)
        security = fields.pop("security", ArchivingProfile.Security.TLS)
        if "port" not in fields:
            key = ("imap" if kind == ArchivingProfile.Type.IMAP else "pop3") + (
                "s" if security == ArchivingProfile.Security.TLS else ""
            )
            fields["port"] = server.ports[key]
        data = services.ProfileData(
            name=fields.pop("name", f"profile {account.user}"),
            type=kind,
            host=fields.pop("host", "127.0.0.1"),
            security=security,
            ca_certificate=server.ca_pem,
            address=world.mailbox.primary_address,
            secret=secret,
            mailbox=world.mailbox,
            **fields,
        )
        return services.save_profile(data)


def run_profile(world: TenantWorld, profile: ArchivingProfile) -> tuple[JobRun, list[str]]:
    with tenant_context(world.tenant):
        run = jobs.run_now(services.PROCESS_TYPE, profile)
        execute_run(run.pk)
        run.refresh_from_db()
        texts = list(JobMessage.objects.filter(run=run).values_list("text", flat=True))
    return run, texts
