"""Test-side building blocks: a fake TXT resolver and the three-tenant world.

The resolver is named by dotted path in ``settings.MAILVAULT_DNS_RESOLVER`` (the
conftest points it here), so domain verification runs the real service code against
records the test itself publishes in :attr:`FakeTxtResolver.records`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from mailvault.accounts import services
from mailvault.accounts.dns import DnsLookupError
from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.roles import Role
from mailvault.archive import services as archive
from mailvault.archive.models import Mailbox, Message
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import ADMIN_GROUP_NAME, provision_tenant

OWNER_PASSWORD = "Owner-Pass-2024x"
MEMBER_PASSWORD = "Reader-Key-2024y"
RESOLVER_PATH = "factories.FakeTxtResolver"


class FakeTxtResolver:
    """TXT records by domain name, filled by the test; unknown names have none."""

    records: ClassVar[dict[str, list[str]]] = {}

    def txt_records(self, name: str) -> list[str]:
        return list(self.records.get(name, []))


@dataclass
class TenantWorld:
    """One tenant: its owner (the provisioned Admin, password already changed), a member
    (a Reader through the group "Readers"), and one object of every kind that URLs take
    by id. ``outsider`` is the member of another tenant."""

    tenant: Tenant
    owner: User
    member: User
    admin_group: Group
    reader_group: Group
    default_domain: Domain
    manual_domain: Domain
    mailbox: Mailbox
    message: Message
    owner_password: str = OWNER_PASSWORD
    member_password: str = MEMBER_PASSWORD
    outsider: User | None = field(default=None)

    @property
    def name(self) -> str:
        return self.tenant.name


def client_for(user: User, **kwargs: bool) -> Client:
    """A test client signed in as ``user`` (the password and TOTP steps skipped)."""
    client = Client(**kwargs)
    with tenant_context(user.tenant):  # login() saves last_login, a tenant-owned write
        client.force_login(user)
    return client


def raw_message(subject: str, to: str) -> bytes:
    """A small multipart message with one text attachment (``notes.txt``)."""
    return (
        f"From: Sender <sender@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Tue, 01 Oct 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{hashlib.sha1(subject.encode()).hexdigest()}@example.com>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello there.\r\n"
        '--b1\r\nContent-Type: text/plain; name="notes.txt"\r\n'
        'Content-Disposition: attachment; filename="notes.txt"\r\n\r\n'
        "Some notes.\r\n--b1--\r\n"
    ).encode()


def add_message(mailbox: Mailbox, subject: str, folder_path: str = "Inbox") -> Message:
    """Archive a real message into ``mailbox`` through the ingestion pipeline."""
    result = ingest(
        IngestRequest(
            raw=raw_message(subject, mailbox.primary_address),
            source=Message.Source.FILE,
            targets=[Target(mailbox, folder_path)],
        )
    )
    return result.message


def build_tenant(name: str) -> TenantWorld:
    provisioned = provision_tenant(name)
    tenant = provisioned.tenant
    with tenant_context(tenant):
        owner = User.objects.get(username=provisioned.admin_username)
        services.change_own_password(owner, provisioned.admin_password, OWNER_PASSWORD)
        admin_group = Group.objects.get(name=ADMIN_GROUP_NAME)
        reader_group = services.create_group("Readers")
        services.set_group_roles(reader_group, [Role.READER])
        member, _ = services.create_user(
            "member",
            name,
            display_name="Member",
            password=MEMBER_PASSWORD,
            groups=[reader_group],
            must_change_password=False,
        )
        manual_domain = services.add_domain(f"mail.{name}.example")
        mailbox = archive.create_mailbox(f"member@{manual_domain.name}", owner=member)
        mailbox.shared_with.set([reader_group])
        message = add_message(mailbox, f"Hello from {name}")
        return TenantWorld(
            tenant=tenant,
            owner=owner,
            member=member,
            admin_group=admin_group,
            reader_group=reader_group,
            default_domain=Domain.objects.get(name=name),
            manual_domain=manual_domain,
            mailbox=mailbox,
            message=message,
        )


def build_world(names: tuple[str, ...] = ("tenant-a", "tenant-b", "tenant-c")) -> list[TenantWorld]:
    worlds = [build_tenant(n) for n in names]
    for i, world in enumerate(worlds):
        world.outsider = worlds[(i + 1) % len(worlds)].member
    return worlds


def admin_login(client: Client, username: str, password: str) -> HttpResponse:
    """The Admin Access sign-in form, as a browser posts it."""
    return client.post(reverse("adminaccess:login"), {"username": username, "password": password})


def web_login(client: Client, username: str, password: str) -> HttpResponse:
    """Web Access: the username page, then the password page."""
    first = client.post(reverse("webaccess:login"), {"username": username})
    assert first.status_code == 302, first.status_code
    return client.post(reverse("webaccess:login_password"), {"password": password})


class FailingTxtResolver:
    """A resolver whose DNS is down."""

    def txt_records(self, name: str) -> list[str]:
        raise DnsLookupError(f"DNS lookup of {name} failed: timed out")
