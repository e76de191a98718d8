"""The journaling SMTP listener with real SMTP clients (smtplib) over loopback.

The listener (``sources/smtp/protocol.py``) runs in its own thread as in production; the
spool consumer is drained from the test thread so that all database work stays in the
test's database.
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.hashers import make_password

from mailvault.accounts.models import Domain
from mailvault.accounts.services import add_domain
from mailvault.archive import services as archive
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.store import store_for
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.smtp.consumer import SpoolConsumer
from mailvault.sources.smtp.endpoints import EndpointDirectory
from mailvault.sources.smtp.fastdata import FastController
from mailvault.sources.smtp.listener import Authenticator, GroupCommitter, JournalHandler
from mailvault.sources.smtp.spool import Spool, read_segment
from mailvault.sources.smtp.tls import server_context
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import provision_tenant

ORIGINAL = (
    b"From: Alice <alice@contoso.com>\r\nTo: bob@contoso.com\r\nSubject: Q3 numbers\r\n"
    b"Message-ID: <q3@contoso.com>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n"
    b"Hello Bob,\r\nthe numbers are in.\r\n"
)


def journal_report(to: str, original: bytes = ORIGINAL, *, extra_envelope: str = "") -> bytes:
    envelope = (
        "Sender: alice@contoso.com\r\nSubject: Q3 numbers\r\nMessage-ID: <q3@contoso.com>\r\n"
        "To: bob@contoso.com\r\nTo: dl-member@contoso.com, Expanded: sales@contoso.com\r\n"
        "Bcc: carol@contoso.com\r\nRecipient: someone@fabrikam.com\r\n" + extra_envelope
    )
    return (
        (
            f"From: MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com\r\nTo: {to}\r\n"
            "Subject: Q3 numbers\r\nX-MS-Journal-Report:\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="jr"\r\n\r\n--jr\r\n'
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + envelope + "--jr\r\n"
            "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ).encode()
        + original
        + b"\r\n--jr--\r\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Listener:
    def __init__(self, spool: Spool, directory: EndpointDirectory, port: int) -> None:
        self.spool = spool
        self.directory = directory
        self.port = port
        self.committer = GroupCommitter(spool)
        self.handler = JournalHandler(directory, self.committer)
        self.consumer = SpoolConsumer(spool)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=20)

    def ingest(self) -> int:
        """Make the spooled mail archived (what the consumer thread does in production)."""
        self.spool.roll_if_due(force=True)
        self.handler.counters.flush()  # what the counters thread does every second
        return self.consumer.drain()


@pytest.fixture
def world(db: None, settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.MAILVAULT_JOURNAL_DOMAIN = "journal.test"
    settings.MAILVAULT_SMTP_MAX_MESSAGE_BYTES = 200_000
    settings.MAILVAULT_SMTP_MAX_RECIPIENTS = 5
    settings.MAILVAULT_STORE_DIR = tmp_path / "store"
    settings.MAILVAULT_INDEX_DIR = tmp_path / "index"
    settings.VAR_DIR = tmp_path
    tenant = provision_tenant("contoso").tenant
    other = provision_tenant("fabrikam").tenant
    with tenant_context(tenant):
        add_domain("contoso.com")
        Domain.objects.filter(name="contoso.com").update(verified=True)
        journal = archive.create_mailbox("journal@contoso", kind=Mailbox.Kind.JOURNAL)
        for name in ("alice", "bob", "carol", "sales"):
            archive.create_mailbox(f"{name}@contoso.com")
        endpoint = JournalEndpoint.objects.create(name="M365", mailbox=journal)
        disabled = JournalEndpoint.objects.create(name="Old", mailbox=journal, enabled=False)
        secured = JournalEndpoint.objects.create(
            name="Secured",
            mailbox=journal,
            auth_username="m365",
            auth_password_hash=make_password("s3cret-Pass!"),
        )
    with tenant_context(other):
        add_domain("fabrikam.com")
        Domain.objects.filter(name="fabrikam.com").update(verified=True)
        archive.create_mailbox("someone@fabrikam.com")
    return {
        "tenant": tenant,
        "other": other,
        "endpoint": endpoint,
        "disabled": disabled,
        "secured": secured,
    }


@pytest.fixture
def listener(world, tmp_path: Path) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    spool = Spool(tmp_path / "spool")
    directory = EndpointDirectory()
    directory.load()
    port = free_port()
    running = Listener(spool, directory, port)
    running.committer.start()
    controller = FastController(
        running.handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="journal.test",
        data_size_limit=200_000,
        enable_SMTPUTF8=True,
        decode_data=False,
        tls_context=server_context(),
        authenticator=Authenticator(directory),
        auth_require_tls=True,
        auth_required=False,
    )
    controller.start()
    try:
        yield running
    finally:
        controller.stop()
        running.committer.stop()


def placements_of(tenant, message_id_header: str) -> set[str]:  # type: ignore[no-untyped-def]
    with tenant_context(tenant):
        return set(
            Placement.objects.filter(message__message_id=message_id_header).values_list(
                "mailbox__primary_address", flat=True
            )
        )


def test_a_journal_report_files_the_original_byte_exact_into_every_party(world, listener):
    endpoint = world["endpoint"]
    with listener.client() as smtp:
        smtp.sendmail(
            "postmaster@contoso.com", [endpoint.smtp_address], journal_report(endpoint.smtp_address)
        )
    assert listener.ingest() == 1
    assert placements_of(world["tenant"], "<q3@contoso.com>") == {
        "journal@contoso",
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
        "sales@contoso.com",
    }
    # The other tenant's someone@fabrikam.com is named in the envelope but gets nothing.
    assert placements_of(world["other"], "<q3@contoso.com>") == set()
    with tenant_context(world["tenant"]):
        message = Message.objects.get(message_id="<q3@contoso.com>")
        assert message.sha256 == hashlib.sha256(ORIGINAL).hexdigest()
        with store_for(world["tenant"]) as store:
            assert store.get(message.sha256) == ORIGINAL
        assert "carol@contoso.com" in message.envelope_recipients  # Bcc kept
        assert JournalEndpoint.objects.get(pk=endpoint.pk).accepted == 1


def test_the_same_report_twice_is_stored_once_per_mailbox(world, listener):
    endpoint = world["endpoint"]
    report = journal_report(endpoint.smtp_address)
    with listener.client() as smtp:
        smtp.sendmail("postmaster@contoso.com", [endpoint.smtp_address], report)
        smtp.sendmail("postmaster@contoso.com", [endpoint.smtp_address], report)
    listener.ingest()
    with tenant_context(world["tenant"]):
        assert Message.objects.filter(message_id="<q3@contoso.com>").count() == 1
        assert Placement.objects.filter(message__message_id="<q3@contoso.com>").count() == 5


def test_250_means_the_message_is_on_disk_before_any_ingestion(world, listener):
    endpoint = world["endpoint"]
    report = journal_report(endpoint.smtp_address)
    with listener.client() as smtp:
        smtp.sendmail("postmaster@contoso.com", [endpoint.smtp_address], report)
    # Nothing ingested yet; the record is already in a spool segment, whole.
    listener.spool.roll_if_due(force=True)
    records = [r for path in listener.spool.ready_segments() for r in read_segment(path)]
    assert [r.body for r in records] == [report]
    with tenant_context(world["tenant"]):
        assert not Message.objects.exists()


def test_unknown_and_disabled_recipients_get_550(world, listener):
    with listener.client() as smtp:
        for address in (
            "nobody@journal.test",
            world["disabled"].smtp_address,
            f"{world['endpoint'].local_part}@elsewhere.test",
        ):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail("a@b.test", [address], b"Subject: x\r\n\r\nx\r\n")
            code, text = refused.value.recipients[address]
            assert code == 550 and b"5.1.1" in text


def test_a_message_over_size_gets_552_and_nothing_is_spooled(world, listener):
    endpoint = world["endpoint"]
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 300
    with listener.client() as smtp, pytest.raises(smtplib.SMTPException) as failed:
        smtp.sendmail("a@b.test", [endpoint.smtp_address], big)
    assert "552" in str(failed.value)
    listener.spool.roll_if_due(force=True)
    assert listener.spool.ready_segments() == []


def test_too_many_recipients_are_refused_with_452(world, listener):
    endpoint = world["endpoint"]
    with listener.client() as smtp:
        smtp.ehlo()
        smtp.mail("a@b.test")
        codes = [
            smtp.rcpt(f"{endpoint.local_part}+u{i}=contoso.com@journal.test")[0] for i in range(7)
        ]
    assert codes[:5] == [250] * 5 and codes[5:] == [452, 452]


def test_plain_copies_are_filed_by_their_envelope_recipients(world, listener):
    endpoint = world["endpoint"]
    copy = (
        b"From: x@gmail.test\r\nTo: bob@contoso.com\r\nSubject: plain\r\n"
        b"Message-ID: <p@x>\r\n\r\nhi\r\n"
    )
    with listener.client() as smtp:
        smtp.sendmail("x@gmail.test", [f"{endpoint.local_part}+bob=contoso.com@journal.test"], copy)
    listener.ingest()
    assert placements_of(world["tenant"], "<p@x>") == {"journal@contoso", "bob@contoso.com"}


def test_an_ndr_archives_only_the_report_it_carries(world, listener):
    endpoint = world["endpoint"]
    report = journal_report(endpoint.smtp_address)
    ndr = (
        b"From: postmaster@contoso.com\r\nTo: alt-journal@contoso.com\r\nSubject: Undeliverable\r\n"
        b"X-MS-Exchange-Message-Is-Ndr:\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="n"\r\n\r\n'
        b"--n\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--n\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + report + b"\r\n--n--\r\n"
    )
    with listener.client() as smtp:
        smtp.sendmail("postmaster@contoso.com", [endpoint.smtp_address], ndr)
    listener.ingest()
    with tenant_context(world["tenant"]):
        subjects = set(Message.objects.values_list("subject", flat=True))
    assert subjects == {"Q3 numbers"}  # the NDR itself is not archived
    assert "bob@contoso.com" in placements_of(world["tenant"], "<q3@contoso.com>")


def test_an_endpoint_with_auth_needs_starttls_and_the_right_password(world, listener):
    secured = world["secured"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with listener.client() as smtp, pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp.sendmail("a@b.test", [secured.smtp_address], b"Subject: x\r\n\r\nx\r\n")
    with listener.client() as smtp:
        smtp.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("m365", "wrong")
    with listener.client() as smtp:
        smtp.starttls(context=context)
        smtp.login("m365", "s3cret-Pass!")
        assert smtp.sendmail("a@b.test", [secured.smtp_address], ORIGINAL) == {}
    assert listener.ingest() == 1


def test_a_torn_spool_tail_keeps_every_whole_record(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.append([({"endpoint": 1}, b"one"), ({"endpoint": 1}, b"two")])
    active = next((tmp_path / "spool" / "active").glob("*.spool"))
    with active.open("ab") as handle:
        handle.write(b"MVS1\x00\x00\x00\x10garbage")  # a record cut short by a crash
    # While its writer lives, the segment is locked and stays where it is.
    assert Spool(tmp_path / "spool").recover() == 0
    assert spool._file is not None
    spool._file.close()  # the writer dies without rolling its segment
    assert Spool(tmp_path / "spool").recover() == 1
    (segment,) = Spool(tmp_path / "spool").ready_segments()
    assert [r.body for r in read_segment(segment)] == [b"one", b"two"]


def test_dot_stuffing_and_long_messages_arrive_byte_exact(world, listener):
    endpoint = world["endpoint"]
    body = b"".join(b".line %d with a leading dot\r\n..two dots\r\n" % i for i in range(3000))
    original = b"Subject: dots\r\nMessage-ID: <dots@x>\r\n\r\n" + body
    with listener.client() as smtp:
        smtp.sendmail("a@b.test", [endpoint.smtp_address], original)
        smtp.sendmail("a@b.test", [endpoint.smtp_address], b"Subject: second\r\n\r\nok\r\n")
    listener.ingest()
    with tenant_context(world["tenant"]):
        stored = Message.objects.get(message_id="<dots@x>")
        assert stored.sha256 == hashlib.sha256(original).hexdigest()
        assert Message.objects.filter(subject="second").exists()
