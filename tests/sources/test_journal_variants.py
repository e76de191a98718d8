"""Every journal report variant of m365-protocol.md §5, the bad input of issue 5, the
persisted counters and the process-log entries, through the real listener (on
loopback) with smtplib and raw sockets. The spool is drained from the test thread, as in
test_smtp_listener.py (whose ``world`` and ``listener`` fixtures this module uses), so
every database write stays in the test's transaction.
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
import time

import pytest
from django.db import OperationalError
from django.db.models import Count, QuerySet

from factories import client_for
from mailvault.accounts.models import User
from mailvault.archive import services as archive
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.store import store_for
from mailvault.jobs.models import JobMessage, JobRun, Severity
from mailvault.search import TenantIndex
from mailvault.search.query import QuerySyntaxError
from mailvault.search.types import Scope
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.smtp import consumer as consumer_module
from mailvault.sources.smtp.counters import EndpointCounters
from mailvault.sources.smtp.fastdata import FastController
from mailvault.sources.smtp.processlog import PROCESS_TYPE
from mailvault.tenancy.context import tenant_context

from . import test_smtp_listener as listener_tests
from .test_smtp_listener import Listener, free_port, placements_of

# test_smtp_listener.py's fixtures, for this module only (``world`` is a different
# fixture elsewhere in the suite: the three tenants of tests/conftest.py).
world = listener_tests.world
listener = listener_tests.listener

ENVELOPE = (
    "Sender: alice@contoso.com\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
    "To: bob@contoso.com\r\n"
)


def original(mid: str, subject: str = "Quarterly", extra: bytes = b"") -> bytes:
    return (
        f"From: Alice <alice@contoso.com>\r\nTo: bob@contoso.com\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n".encode()
        + extra
        + b"\r\nBody of "
        + mid.encode()
        + b"\r\n"
    )


def report(
    to: str,
    originals: list[bytes],
    *,
    marker: str = "X-MS-Journal-Report:",
    envelope: str | None = None,
    mid: str = "<m@contoso.com>",
    with_envelope: bool = True,
) -> bytes:
    """A journal report as Exchange builds it: the envelope part, then the original(s)
    as message/rfc822 with Content-Transfer-Encoding: binary."""
    head = (
        f"From: MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com\r\nTo: {to}\r\n"
        f"Subject: Journal\r\n{marker}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="jr"\r\n\r\n'
    ).encode()
    parts = b""
    if with_envelope:
        text = envelope if envelope is not None else ENVELOPE.format(subject="Quarterly", mid=mid)
        parts += b"--jr\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + text.encode()
    for one in originals:
        parts += (
            b"--jr\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            + one
            + b"\r\n"
        )
    return head + parts + b"--jr--\r\n"


def ndr(inner: bytes) -> bytes:
    return (
        b"From: postmaster@contoso.com\r\nTo: alt-journal@contoso.com\r\n"
        b"Subject: Undeliverable: Journal\r\nX-MS-Exchange-Message-Is-Ndr:\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="n"\r\n\r\n'
        b"--n\r\nContent-Type: text/plain\r\n\r\nDelivery has failed.\r\n"
        b"--n\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        b"--n\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--n--\r\n"
    )


def send(listener: Listener, to: str, data: bytes, mail_from: str = "jr@contoso.com") -> None:
    with listener.client() as smtp:
        assert smtp.sendmail(mail_from, [to], data) == {}


def stored_bytes(tenant, message_id: str) -> bytes:  # type: ignore[no-untyped-def]
    with tenant_context(tenant):
        message = Message.objects.get(message_id=message_id)
        with store_for(tenant) as store:
            return store.get(message.sha256)


def problem_lines(tenant) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    with tenant_context(tenant):
        return list(
            JobMessage.objects.filter(run__process_type=PROCESS_TYPE).values_list(
                "severity", "text"
            )
        )


ALL_PARTIES = {"journal@contoso", "alice@contoso.com", "bob@contoso.com"}


# --- §5 variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        "X-MS-Journal-Report:",
        "X-MS-Exchange-Organization-Journal-Report:",
        "Content-Identifier: exjournalreport",
    ],
)
def test_every_journal_marker_is_recognised_and_the_original_kept_byte_exact(
    world, listener, marker
):
    endpoint = world["endpoint"]
    body = original("<mk@contoso.com>")
    send(listener, endpoint.smtp_address, report(endpoint.smtp_address, [body], marker=marker))
    listener.ingest()
    assert placements_of(world["tenant"], "<mk@contoso.com>") == ALL_PARTIES
    assert stored_bytes(world["tenant"], "<mk@contoso.com>") == body
    with tenant_context(world["tenant"]):
        assert Message.objects.count() == 1  # the report itself is not archived


def test_a_report_with_a_decrypted_copy_keeps_both(world, listener):
    endpoint = world["endpoint"]
    encrypted = original(
        "<enc@contoso.com>",
        extra=b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n",
    )
    decrypted = original("<enc@contoso.com>", extra=b"X-MS-Exchange-Decrypted: yes\r\n")
    send(listener, endpoint.smtp_address, report(endpoint.smtp_address, [encrypted, decrypted]))
    listener.ingest()
    tenant = world["tenant"]
    with tenant_context(tenant):
        shas = set(Message.objects.values_list("sha256", flat=True))
        assert shas == {hashlib.sha256(b).hexdigest() for b in (encrypted, decrypted)}
        per_message = dict(
            Message.objects.annotate(n=Count("placements")).values_list("sha256", "n")
        )
    assert set(per_message.values()) == {3}  # each one in the journal, Alice's and Bob's


def test_every_envelope_line_kind_files_into_the_tenant_mailboxes(world, listener):
    endpoint = world["endpoint"]
    tenant = world["tenant"]
    with tenant_context(tenant):
        archive.create_mailbox("dave@contoso.com", secondary_addresses=["d.boss@contoso.com"])
        archive.create_mailbox("erin@contoso.com")
        archive.create_mailbox("fwd@contoso.com")
        archive.create_mailbox("dl@contoso.com")
    envelope = (
        "Sender: assistant@contoso.com\r\nOn-Behalf-Of: d.boss@contoso.com\r\n"
        "Subject: Quarterly\r\nMessage-ID: <env@contoso.com>\r\nLabel: x\r\n"
        "Mailbox: x\r\nSentUtc: 2026-11-02T10:00:00\r\nReceivedUtc: 2026-11-02T10:00:01\r\n"
        "To: bob@contoso.com\r\nTo: dl-member@contoso.com, Expanded: dl@contoso.com\r\n"
        "Cc: fwd@contoso.com, Forwarded: erin@contoso.com\r\nBcc: carol@contoso.com\r\n"
        "Recipient: ext@fabrikam.com\r\nRecipient: someone@fabrikam.com\r\n"
    )
    body = original("<env@contoso.com>")
    send(
        listener,
        endpoint.smtp_address,
        report(endpoint.smtp_address, [body], envelope=envelope),
    )
    listener.ingest()
    assert placements_of(tenant, "<env@contoso.com>") == {
        "journal@contoso",
        "dave@contoso.com",  # On-Behalf-Of, by its secondary address
        "bob@contoso.com",
        "dl@contoso.com",
        "fwd@contoso.com",
        "erin@contoso.com",
        "carol@contoso.com",  # Bcc
    }
    assert placements_of(world["other"], "<env@contoso.com>") == set()
    # The envelope is kept with the message and searchable by Compliance only.
    with tenant_context(tenant):
        message = Message.objects.get(message_id="<env@contoso.com>")
        assert message.envelope_from == "assistant@contoso.com"
        assert "carol@contoso.com" in message.envelope_recipients
        bob = Mailbox.objects.get(primary_address="bob@contoso.com")
    index = TenantIndex.open(tenant.pk)
    assert index.search("bcc:carol@contoso.com", Scope.whole_tenant()).total == 1
    assert index.search("carol@contoso.com", Scope.whole_tenant()).total == 1
    # Bob's own view finds the message, but not by its hidden Bcc.
    assert index.search("quarterly", Scope.mailboxes([bob.pk])).total == 1
    assert index.search("carol@contoso.com", Scope.mailboxes([bob.pk])).total == 0
    with pytest.raises(QuerySyntaxError):
        index.search("bcc:carol@contoso.com", Scope.mailboxes([bob.pk]))


def test_an_ndr_carrying_plain_mail_archives_only_that_mail(world, listener):
    endpoint = world["endpoint"]
    inner = original("<bounced@contoso.com>")
    send(
        listener,
        f"{endpoint.local_part}+bob=contoso.com@journal.test",
        ndr(inner),
        mail_from="",
    )
    listener.ingest()
    with tenant_context(world["tenant"]):
        assert list(Message.objects.values_list("message_id", flat=True)) == [
            "<bounced@contoso.com>"
        ]
    assert stored_bytes(world["tenant"], "<bounced@contoso.com>") == inner
    assert placements_of(world["tenant"], "<bounced@contoso.com>") == {
        "journal@contoso",
        "bob@contoso.com",
    }


def test_an_ndr_wrapped_report_with_a_decrypted_copy_unwraps_all_the_way(world, listener):
    endpoint = world["endpoint"]
    first, second = original("<w1@contoso.com>"), original("<w2@contoso.com>")
    send(listener, endpoint.smtp_address, ndr(report("alt@contoso.com", [first, second])))
    listener.ingest()
    with tenant_context(world["tenant"]):
        assert set(Message.objects.values_list("message_id", flat=True)) == {
            "<w1@contoso.com>",
            "<w2@contoso.com>",
        }
    assert stored_bytes(world["tenant"], "<w2@contoso.com>") == second
    assert placements_of(world["tenant"], "<w1@contoso.com>") == ALL_PARTIES


def test_the_same_report_via_two_endpoints_and_twice_is_one_placement_per_mailbox(world, listener):
    endpoint, secured = world["endpoint"], world["secured"]
    with tenant_context(world["tenant"]):
        JournalEndpoint.objects.filter(pk=secured.pk).update(auth_username="")
    listener.directory.load()
    data = report(endpoint.smtp_address, [original("<dup@contoso.com>")])
    with listener.client() as smtp:
        for _ in range(3):
            smtp.sendmail("jr@contoso.com", [endpoint.smtp_address, secured.smtp_address], data)
    listener.ingest()
    with tenant_context(world["tenant"]):
        rows = list(
            Placement.objects.filter(message__message_id="<dup@contoso.com>").values_list(
                "mailbox__primary_address", flat=True
            )
        )
    assert sorted(rows) == sorted(ALL_PARTIES)


# --- bad input ------------------------------------------------------------------------


def test_a_report_without_an_envelope_part_is_archived_and_logged(world, listener):
    endpoint = world["endpoint"]
    body = original("<noenv@contoso.com>")
    data = report(endpoint.smtp_address, [body], with_envelope=False)
    send(listener, f"{endpoint.local_part}+bob=contoso.com@journal.test", data)
    listener.ingest()
    # Filed by what the SMTP envelope says, and the problem is in the process log.
    assert placements_of(world["tenant"], "<noenv@contoso.com>") == {
        "journal@contoso",
        "bob@contoso.com",
    }
    [(severity, text)] = problem_lines(world["tenant"])
    assert severity == Severity.WARNING
    assert "without an envelope part" in text and "jr@contoso.com" in text
    with tenant_context(world["tenant"]):
        run = JobRun.objects.get(process_type=PROCESS_TYPE)
        assert run.config_id == str(endpoint.pk) and run.status == JobRun.Status.FINISHED


def test_garbage_after_data_is_kept_as_received(world, listener):
    endpoint = world["endpoint"]
    garbage = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") * 40 + b"\r\n"
    garbage = b"\x00\xff not a header at all\r\n" + garbage + b"..\r\n.x\r\n"
    send(listener, endpoint.smtp_address, garbage)
    listener.ingest()
    with tenant_context(world["tenant"]):
        [message] = Message.objects.all()
        assert message.sha256 == hashlib.sha256(garbage).hexdigest()
        assert set(message.placements.values_list("mailbox__primary_address", flat=True)) == {
            "journal@contoso"
        }


def test_8bit_headers_survive_byte_exact_and_are_searchable(world, listener):
    endpoint = world["endpoint"]
    body = (
        "From: Jürgen Groß <alice@contoso.com>\r\nTo: bob@contoso.com\r\n"
        "Subject: Grüße aus Köln \u2013 8bit\r\nMessage-ID: <8bit@contoso.com>\r\n"
        "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nÄrger mit der Bilanz\r\n"
    ).encode() + b"Latin-1 byte: \xe9t\xe9\r\n"
    data = report(endpoint.smtp_address, [body], mid="<8bit@contoso.com>")
    with listener.client() as smtp:
        smtp.ehlo()
        assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime")
        assert (
            smtp.sendmail(
                "jürgen@contoso.com",  # an 8-bit envelope sender too (RFC 6531)
                [endpoint.smtp_address],
                data,
                mail_options=["BODY=8BITMIME", "SMTPUTF8"],
            )
            == {}
        )
    listener.ingest()
    assert stored_bytes(world["tenant"], "<8bit@contoso.com>") == body
    with tenant_context(world["tenant"]):
        assert Message.objects.get(message_id="<8bit@contoso.com>").envelope_from == (
            "alice@contoso.com"  # the journal envelope's Sender: wins over MAIL FROM
        )
    with tenant_context(world["tenant"]):
        assert Message.objects.get(message_id="<8bit@contoso.com>").subject.startswith("Grüße")
    index = TenantIndex.open(world["tenant"].pk)
    assert index.search("subject:köln", Scope.whole_tenant()).total == 1


def _reply(sock: socket.socket) -> bytes:
    """One whole SMTP reply (the last line has a space after the code)."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return data


def _raw_session(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    _reply(sock)
    return sock


def _command(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    return _reply(sock).split(b"\r\n")[-2]


def test_a_client_that_drops_mid_data_leaves_nothing(world, listener):
    endpoint = world["endpoint"]
    sock = _raw_session(listener.port)
    _command(sock, b"EHLO drop.test")
    assert _command(sock, b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert _command(sock, f"RCPT TO:<{endpoint.smtp_address}>".encode()).startswith(b"250")
    assert _command(sock, b"DATA").startswith(b"354")
    sock.sendall(b"Subject: half\r\n\r\n" + b"x" * 100_000)  # and no terminating dot
    sock.close()
    time.sleep(0.3)
    listener.spool.roll_if_due(force=True)
    assert listener.spool.ready_segments() == []
    assert listener.ingest() == 0
    with tenant_context(world["tenant"]):
        assert not Message.objects.exists()


# --- failures end up in the process log, and the message is never lost -------------


def test_a_report_that_cannot_be_unwrapped_is_archived_raw_and_logged(world, listener, monkeypatch):
    endpoint = world["endpoint"]
    data = report(endpoint.smtp_address, [original("<broken@contoso.com>")])

    def explode(raw: bytes) -> None:
        raise ValueError("boundary from outer space")

    monkeypatch.setattr(consumer_module, "unwrap", explode)
    send(listener, endpoint.smtp_address, data)
    listener.ingest()
    with tenant_context(world["tenant"]):
        [message] = Message.objects.all()
        assert message.sha256 == hashlib.sha256(data).hexdigest()  # the report, as received
        assert set(message.placements.values_list("mailbox__primary_address", flat=True)) == {
            "journal@contoso"
        }
        run = JobRun.objects.get(process_type=PROCESS_TYPE)
        assert run.max_severity == Severity.ERROR
    [(_, text)] = problem_lines(world["tenant"])
    assert "could not be unwrapped" in text and "boundary from outer space" in text


def test_an_ingestion_error_keeps_the_report_raw_and_the_rest_of_the_batch(
    world, listener, monkeypatch
):
    endpoint = world["endpoint"]
    poison = original("<poison@contoso.com>", extra=b"X-Poison: 1\r\n")
    healthy = original("<healthy@contoso.com>")
    real = consumer_module.Ingestor

    class Fragile(real):  # type: ignore[misc, valid-type]
        def add(self, request):  # type: ignore[no-untyped-def]
            if b"X-Poison: 1" in request.raw.split(b"\r\n\r\n", 1)[0]:
                raise RuntimeError("the parser fell over")
            super().add(request)

    monkeypatch.setattr(consumer_module, "Ingestor", Fragile)
    bad = report(endpoint.smtp_address, [poison], mid="<poison@contoso.com>")
    send(listener, endpoint.smtp_address, bad)
    send(listener, endpoint.smtp_address, report(endpoint.smtp_address, [healthy]))
    assert listener.ingest() == 2
    assert placements_of(world["tenant"], "<healthy@contoso.com>") == ALL_PARTIES
    with tenant_context(world["tenant"]):
        raw_kept = Message.objects.get(sha256=hashlib.sha256(bad).hexdigest())
        assert set(raw_kept.placements.values_list("mailbox__primary_address", flat=True)) == {
            "journal@contoso"
        }
    [(severity, text)] = problem_lines(world["tenant"])
    assert severity == Severity.ERROR
    assert "the parser fell over" in text and "archived as received" in text


# --- counters --------------------------------------------------------------------------


def test_counters_are_persisted_and_add_up_across_processes(world, listener, settings):
    endpoint, disabled, secured = world["endpoint"], world["disabled"], world["secured"]
    data = report(endpoint.smtp_address, [original("<c@contoso.com>")])
    send(listener, endpoint.smtp_address, data)
    send(listener, endpoint.smtp_address, data)
    with listener.client() as smtp:
        for address in (disabled.smtp_address, secured.smtp_address):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("a@b.test", [address], b"Subject: x\r\n\r\nx\r\n")
    listener.handler.spool_limit = -1  # everything is "overloaded" now: 451
    with listener.client() as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as deferred:
            smtp.sendmail("a@b.test", [endpoint.smtp_address], data)
        assert deferred.value.recipients[endpoint.smtp_address][0] == 451
    # Nothing in the database until a flush; then the counts are there.
    with tenant_context(world["tenant"]):
        assert JournalEndpoint.objects.get(pk=endpoint.pk).accepted == 0
    assert listener.handler.counters.flush() == 3
    # A second listener process counting into the same rows.
    other = EndpointCounters()
    other.accepted(endpoint.pk, time.time() - 3600)  # an older message: keeps the newest
    other.rejected(disabled.pk)
    other.flush()
    with tenant_context(world["tenant"]):
        rows = {
            e.pk: (e.accepted, e.rejected, e.deferred, e.last_received_at)
            for e in JournalEndpoint.objects.all()
        }
    accepted, rejected, deferred_count, last = rows[endpoint.pk]
    assert (accepted, rejected, deferred_count) == (3, 0, 1)
    assert last is not None and abs(last.timestamp() - time.time()) < 60
    assert rows[disabled.pk][:3] == (0, 2, 0)
    assert rows[secured.pk][:3] == (0, 1, 0)


def test_a_failed_flush_keeps_its_counts(world, monkeypatch):
    counters = EndpointCounters()
    counters.accepted(world["endpoint"].pk, time.time())

    def down(self, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database restarting")

    monkeypatch.setattr(QuerySet, "update", down)
    with pytest.raises(RuntimeError):
        counters.flush()
    monkeypatch.undo()
    assert counters.pending()[world["endpoint"].pk].accepted == 1
    assert counters.flush() == 1
    with tenant_context(world["tenant"]):
        assert JournalEndpoint.objects.get(pk=world["endpoint"].pk).accepted == 1


def test_a_client_that_trickles_bytes_is_cut_off_by_the_timeout(world, listener):
    """The idle timeout restarts only with each valid command or each 4 KB of DATA, so a
    DATA phase that trickles (a byte every 0.2 s here) ends when the timeout (1.5 s here,
    120 s in ``mailvault smtpd``) runs out: the connection is closed and nothing is kept."""
    endpoint = world["endpoint"]
    port = free_port()
    controller = FastController(
        listener.handler,
        hostname="127.0.0.1",
        port=port,
        decode_data=False,
        timeout=1.5,
    )
    controller.start()
    try:
        sock = _raw_session(port)
        _command(sock, b"EHLO slow.test")
        _command(sock, b"MAIL FROM:<a@b.test>")
        _command(sock, f"RCPT TO:<{endpoint.smtp_address}>".encode())
        assert _command(sock, b"DATA").startswith(b"354")
        started = time.monotonic()
        closed = False
        for byte in b"Subject: slow\r\n\r\n" + b"z" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            sock.settimeout(0.01)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        assert closed and time.monotonic() - started < 5
        sock.close()
    finally:
        controller.stop()
    listener.spool.roll_if_due(force=True)
    assert listener.spool.ready_segments() == []


def test_a_slow_but_steady_sender_keeps_its_session(world, listener):
    """Progress in DATA restarts the timeout: a big message over a slow link (5 KiB every
    0.5 s, longer in all than the 1.5 s timeout) is accepted whole."""
    endpoint = world["endpoint"]
    port = free_port()
    controller = FastController(
        listener.handler, hostname="127.0.0.1", port=port, decode_data=False, timeout=1.5
    )
    controller.start()
    try:
        sock = _raw_session(port)
        _command(sock, b"EHLO steady.test")
        _command(sock, b"MAIL FROM:<a@b.test>")
        _command(sock, f"RCPT TO:<{endpoint.smtp_address}>".encode())
        assert _command(sock, b"DATA").startswith(b"354")
        started = time.monotonic()
        sock.sendall(b"Subject: steady\r\nMessage-ID: <steady@b.test>\r\n\r\n")
        for _ in range(8):
            sock.sendall(b"y" * 5118 + b"\r\n")
            time.sleep(0.5)
        assert time.monotonic() - started > 3  # well past the timeout
        assert _command(sock, b".").startswith(b"250")
        sock.close()
    finally:
        controller.stop()
    listener.ingest()
    with tenant_context(world["tenant"]):
        assert Message.objects.filter(message_id="<steady@b.test>").exists()


def test_journaling_problems_show_in_the_admin_process_log(world, listener):
    endpoint = world["endpoint"]
    data = report(endpoint.smtp_address, [original("<nolog@contoso.com>")], with_envelope=False)
    send(listener, endpoint.smtp_address, data)
    listener.ingest()
    with tenant_context(world["tenant"]):
        admin = User.objects.get(username="admin@contoso")
        User.objects.filter(pk=admin.pk).update(must_change_password=False)
        run = JobRun.objects.get(process_type=PROCESS_TYPE)
    client = client_for(admin)
    listing = client.get("/adminaccess/process-log/", {"process_type": PROCESS_TYPE})
    assert listing.status_code == 200
    assert "SMTP journaling" in listing.content.decode()
    detail = client.get(f"/adminaccess/process-log/{run.pk}/").content.decode()
    assert "without an envelope part" in detail and endpoint.name in detail
    page = client.get("/adminaccess/journal-endpoints/").content.decode()
    assert f"?process_type={PROCESS_TYPE}" in page


def test_a_database_outage_leaves_the_segment_for_the_next_try(world, listener, monkeypatch):
    endpoint = world["endpoint"]
    send(listener, endpoint.smtp_address, report(endpoint.smtp_address, [original("<db@x>")]))
    real = consumer_module.Ingestor

    class Unreachable(real):  # type: ignore[misc, valid-type]
        def add(self, request):  # type: ignore[no-untyped-def]
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(consumer_module, "Ingestor", Unreachable)
    with pytest.raises(OperationalError):
        listener.ingest()
    assert len(listener.spool.ready_segments()) == 1  # kept, whole
    monkeypatch.setattr(consumer_module, "Ingestor", real)
    assert listener.ingest() == 1
    assert listener.spool.ready_segments() == []
    assert placements_of(world["tenant"], "<db@x>") == ALL_PARTIES
    assert problem_lines(world["tenant"]) == []  # an outage is not the message's problem


def test_a_message_nothing_can_archive_is_kept_beside_the_spool(world, listener, monkeypatch):
    endpoint = world["endpoint"]
    data = report(endpoint.smtp_address, [original("<stuck@x>")])
    send(listener, endpoint.smtp_address, data)
    real = consumer_module.Ingestor

    class Broken(real):  # type: ignore[misc, valid-type]
        def add(self, request):  # type: ignore[no-untyped-def]
            raise RuntimeError("store full of bees")

    monkeypatch.setattr(consumer_module, "Ingestor", Broken)
    assert listener.ingest() == 1
    [kept] = (listener.spool.root / "failed").glob("*.eml")
    assert kept.read_bytes() == data
    [(severity, text)] = problem_lines(world["tenant"])
    assert severity == Severity.ERROR and str(kept) in text and "store full of bees" in text
