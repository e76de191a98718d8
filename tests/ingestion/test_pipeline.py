"""The ingestion pipeline end to end: parse, deduplicate, store, record, index.

Real store (encrypted packs in a temporary folder), real index, real database; the
``verify`` command is run as it is from the command line (``call_command``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django import Settings

from corpus import archive_settings
from mailvault.accounts import services as accounts
from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Folder, Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.archive.store import store_for
from mailvault.ingestion.pipeline import Ingestor, ingest, ingest_all
from mailvault.ingestion.reconcile import reconcile_index
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.search import TenantIndex
from mailvault.search.services import search_for_user
from mailvault.search.types import Scope
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant

FILE = Message.Source.FILE


def mail(subject: str, body: str = "Hello there", *, to: str = "ops@pipe") -> bytes:
    return (
        f"From: Alice Example <alice@example.com>\r\nTo: {to}\r\n"
        f"Subject: {subject}\r\nDate: Tue, 01 Oct 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{hashlib.sha1(subject.encode()).hexdigest()}@example.com>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


@dataclass
class World:
    tenant: Tenant
    ops: Mailbox
    sales: Mailbox
    reader: User


@pytest.fixture
def world(db: None, settings: Settings, tmp_path: Path) -> Iterator[World]:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    tenant = provision_tenant("pipe").tenant
    with tenant_context(tenant):
        group = accounts.create_group("Readers")
        accounts.set_group_roles(group, [Role.READER])
        reader, _ = accounts.create_user(
            "rita", tenant.name, groups=[group], must_change_password=False
        )
        ops = create_mailbox("ops@pipe", owner=reader, secondary_addresses=["support@pipe"])
        sales = create_mailbox("sales@pipe", shared_with=[group])
        yield World(tenant, ops, sales, reader)


def stored_count(tenant: Tenant) -> int:
    with store_for(tenant) as store:
        return store.message_count()


def pack_bytes(tenant: Tenant) -> int:
    with store_for(tenant) as store:
        return sum(p.stat().st_size for p in (store.root / "packs").iterdir())


def test_same_bytes_in_two_folders_and_two_mailboxes_are_stored_once(world: World) -> None:
    raw = mail("Quarterly numbers")
    results = ingest_all(
        [
            IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]),
            IngestRequest(raw, FILE, targets=[Target(world.ops, "Archive/2024")]),
        ]
    )
    results.append(ingest(IngestRequest(raw, FILE, targets=[Target(world.sales, "Inbox")])))
    assert [r.stored for r in results] == [True, False, False]
    assert {r.message.pk for r in results} == {results[0].message.pk}
    assert Message.objects.count() == 1
    assert stored_count(world.tenant) == 1
    message = Message.objects.get()
    assert message.sha256 == hashlib.sha256(raw).hexdigest()
    assert set(Placement.objects.values_list("mailbox__primary_address", "folder__path")) == {
        ("ops@pipe", "Inbox"),
        ("ops@pipe", "Archive/2024"),
        ("sales@pipe", "Inbox"),
    }
    # The folder tree got its parents.
    assert Folder.objects.get(mailbox=world.ops, path="Archive/2024").parent.path == "Archive"

    size = pack_bytes(world.tenant)
    again = ingest_all(
        [
            IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]),
            IngestRequest(raw, FILE, targets=[Target(world.ops, "/Archive/2024/")]),
            IngestRequest(raw, FILE, targets=[Target(world.sales, "Inbox")]),
        ]
    )
    assert [(r.stored, r.placements_added) for r in again] == [(False, 0)] * 3
    assert (Message.objects.count(), Placement.objects.count()) == (1, 3)
    assert stored_count(world.tenant) == 1
    assert pack_bytes(world.tenant) == size
    # The index holds the message once, in both mailboxes.
    index = TenantIndex.open(world.tenant.pk)
    assert index.message_ids() == {message.pk}
    hits = search_for_user(world.reader, "subject:quarterly").hits
    assert [h.message_id for h in hits] == [message.pk]


def test_a_message_is_filed_by_any_address_of_a_mailbox(world: World) -> None:
    raw = mail("Ticket 42", to="support@pipe")
    result = ingest(
        IngestRequest(
            raw,
            Message.Source.SMTP,
            file_by_addresses=["SUPPORT@pipe", "nobody@elsewhere.example"],
            envelope_recipients=["Support@Pipe"],
        )
    )
    assert result.placements_added == 1
    placement = Placement.objects.get()
    assert (placement.mailbox, placement.folder.path) == (world.ops, "")
    assert result.message.envelope_recipients == ["support@pipe"]


def test_a_journaled_copy_adds_its_envelope_to_a_message_archived_before(
    world: World,
) -> None:
    """Archived from a mailbox first, journaled later: who really got it (the Bcc of the
    envelope) is kept and findable by Compliance, and the message is still stored once."""
    raw = mail("Board minutes", to="ops@pipe")
    first = ingest(IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]))
    assert first.message.envelope_recipients == []
    journaled = ingest(
        IngestRequest(
            raw,
            Message.Source.SMTP,
            targets=[Target(world.sales, "")],
            envelope_from="alice@example.com",
            envelope_recipients=["ops@pipe", "Hidden.Boss@Pipe"],
        )
    )
    assert not journaled.stored
    message = Message.objects.get()
    assert message.envelope_recipients == ["ops@pipe", "hidden.boss@pipe"]
    assert message.envelope_from == "alice@example.com"
    index = TenantIndex.open(world.tenant.pk)
    hits = index.search("bcc:hidden.boss@pipe", Scope.whole_tenant()).hits
    assert [h.message_id for h in hits] == [message.pk]
    # The same envelope again changes nothing; a further recipient is added once.
    ingest(IngestRequest(raw, Message.Source.SMTP, envelope_recipients=["hidden.boss@pipe"]))
    ingest(IngestRequest(raw, Message.Source.SMTP, envelope_recipients=["late@pipe"]))
    message.refresh_from_db()
    assert message.envelope_recipients == ["ops@pipe", "hidden.boss@pipe", "late@pipe"]
    assert stored_count(world.tenant) == 1


def test_new_mail_is_findable_at_once(world: World) -> None:
    result = ingest(
        IngestRequest(
            mail("Budget", "the zeppelin budget is approved"),
            FILE,
            targets=[Target(world.sales, "Inbox")],
        )
    )
    result.message.refresh_from_db()
    assert result.message.indexed
    found = search_for_user(world.reader, "zeppelin from:alice@example.com")
    assert [h.message_id for h in found.hits] == [result.message.pk]


def test_unparseable_mail_is_stored_raw_flagged_and_findable(world: World) -> None:
    raw = b"\x00\xff\xfe garbage without any header, mentions quokka\r\n" * 20
    result = ingest(IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]))
    message = Message.objects.get(pk=result.message.pk)
    assert message.unparseable
    assert message.parse_problem
    with store_for(world.tenant) as store:
        assert store.get(message.sha256) == raw
    assert [h.message_id for h in search_for_user(world.reader, "quokka").hits] == [message.pk]


def test_a_crash_before_the_index_step_is_repaired_by_reconcile(world: World) -> None:
    with Ingestor(index=False) as ingestor:
        for n in range(5):
            ingestor.add(IngestRequest(mail(f"Note {n}"), FILE, targets=[Target(world.ops)]))
    ids = set(Message.objects.values_list("pk", flat=True))
    assert len(ids) == 5
    assert Message.objects.filter(indexed=False).count() == 5
    index = TenantIndex.open(world.tenant.pk)
    assert index.message_ids() == set()
    report = reconcile_index()
    assert report.indexed == 5
    assert index.message_ids() == ids
    assert not Message.objects.filter(indexed=False).exists()
    assert reconcile_index().indexed == 0


def run_verify(tenant: Tenant) -> str:
    out = io.StringIO()
    call_command("verify", "--tenant", tenant.name, stdout=out)
    return out.getvalue()


def test_verify_detects_one_flipped_byte_in_a_pack(world: World) -> None:
    raws = [mail(f"Report {n}", f"figures for week {n}") for n in range(6)]
    ingest_all([IngestRequest(raw, FILE, targets=[Target(world.ops)]) for raw in raws])
    assert "store verified: no mismatches" in run_verify(world.tenant)

    shas = [hashlib.sha256(raw).hexdigest() for raw in raws]
    victim = shas[3]
    with store_for(world.tenant) as store:
        where = store.location(victim)
        assert where is not None
        pack = store._packs.path(where.pack)
        # Small messages share a block record: a byte flipped in it damages all of them.
        inside = {
            sha
            for sha in shas
            if (loc := store.location(sha)) and (loc.pack, loc.offset) == (where.pack, where.offset)
        }
    with open(pack, "r+b") as handle:
        handle.seek(where.offset + where.length // 2)
        byte = handle.read(1)
        handle.seek(-1, io.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))

    with pytest.raises(CommandError, match=f"^{len(inside)} mismatch"):
        run_verify(world.tenant)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify", "--tenant", world.tenant.name, stdout=out)
    for sha in inside:
        lines = [line for line in out.getvalue().splitlines() if sha in line]
        assert len(lines) == 1
        assert f"pack {where.pack} offset {where.offset}" in lines[0]
    # The other messages still read back byte for byte.
    with store_for(world.tenant) as store:
        for raw, sha in zip(raws, shas, strict=True):
            if sha not in inside:
                assert store.get(sha) == raw


def test_verify_refuses_an_unknown_tenant(db: None) -> None:
    with pytest.raises(CommandError, match="no tenant named"):
        call_command("verify", "--tenant", "nosuchtenant")


@pytest.mark.parametrize(
    "date",
    [
        "Wed, 21 Aug 2002 20:31:57 -1600",  # PostgreSQL refuses offsets past 15:59
        "Thu, 22 Aug 0102 12:07:35 +0800",  # before anything the index can hold
        "Fri, 01 Jan 9999 00:00:00 +0000",
    ],
)
def test_odd_dates_from_real_mail_are_archived_and_findable(world: World, date: str) -> None:
    raw = f"From: a@example.com\r\nSubject: odd date\r\nDate: {date}\r\n\r\nwombat\r\n".encode()
    result = ingest(IngestRequest(raw, FILE, targets=[Target(world.ops)]))
    message = Message.objects.get(pk=result.message.pk)
    assert message.indexed
    assert [h.message_id for h in search_for_user(world.reader, "wombat").hits] == [message.pk]
