"""Journal rules + sending inside the tenant: reports arrive over real SMTP (aiosmtpd) in the
Exchange format, and Mailvault's own unwrapper reads them back."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from m365_emulator.testing import EmulatorHandle
from mailvault.sources.smtp.journal import Kind, unwrap

JOURNAL = "journal-endpoint@journal.mailvault.localhost"


class Collector:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Collector, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    yield collector, port
    controller.stop()


def test_journal_rule_delivers_an_envelope_report_for_a_message_sent_in_the_tenant(
    m365: EmulatorHandle, smtp_sink: tuple[Collector, int]
) -> None:
    collector, port = smtp_sink
    rule = m365.add_journal_rule(
        "Archive everything", JOURNAL, scope="global", smarthost=f"127.0.0.1:{port}"
    )
    try:
        sent = m365.send(
            "kenneth.lay@enron.com",
            ["jeff.skilling@enron.com", "trading@enron.com", "partner@fabrikam.example"],
            "Q3 numbers",
            "See attached.",
            bcc=["greg.whalley@enron.com"],
        )
        assert [r["ok"] for r in sent["reports"]] == [True]
        assert "jeff.skilling@enron.com" in sent["deliveredTo"]
        assert len(collector.received) == 1
        _sender, rcpts, raw = collector.received[0]
        assert rcpts == [JOURNAL]
        report = message_from_bytes(raw)
        assert "X-MS-Journal-Report" in report and report.get_content_type() == "multipart/mixed"
        envelope_part, original_part = report.get_payload()
        envelope = envelope_part.get_payload()
        assert "Sender: kenneth.lay@enron.com" in envelope and "Subject: Q3 numbers" in envelope
        assert f"Message-ID: {sent['internetMessageId']}" in envelope
        assert (
            "To: jeff.skilling@enron.com" in envelope and "To: partner@fabrikam.example" in envelope
        )
        assert (
            "Expanded: trading@enron.com" in envelope and "Bcc: greg.whalley@enron.com" in envelope
        )
        assert original_part.get_content_type() == "message/rfc822"
        unwrapped = unwrap(raw)
        assert unwrapped.kind is Kind.JOURNAL_REPORT
        ((original, env),) = unwrapped.originals
        assert message_from_bytes(original)["Message-ID"] == sent["internetMessageId"]
        assert env is not None and "greg.whalley@enron.com" in env.bcc
        inbox = m365.graph(
            "GET",
            "/users/jeff.skilling@enron.com/mailFolders/inbox/messages?$top=5&$select=subject,internetMessageId",
        ).json()["value"]
        assert sent["internetMessageId"] in {m["internetMessageId"] for m in inbox}
    finally:
        m365.control("DELETE", f"journal-rules/{rule['id']}")


def test_scope_recipient_filter_and_variants(
    m365: EmulatorHandle, smtp_sink: tuple[Collector, int]
) -> None:
    collector, port = smtp_sink
    host = f"127.0.0.1:{port}"
    internal = m365.add_journal_rule(
        "Internal only", "internal@journal.example", scope="internal", smarthost=host
    )
    execs = m365.add_journal_rule(
        "Executives",
        "execs@journal.example",
        scope="global",
        recipient="bill.rapp@enron.com",
        smarthost=host,
    )
    try:
        m365.send("mike.carson@enron.com", ["someone@fabrikam.example"], "External")
        assert collector.received == []
        m365.send("mike.carson@enron.com", ["bill.rapp@enron.com"], "Internal", variant="decrypted")
        assert sorted(r[1][0] for r in collector.received) == [
            "execs@journal.example",
            "internal@journal.example",
        ]
        decrypted = message_from_bytes(collector.received[0][2])
        assert [p.get_content_type() for p in decrypted.get_payload()][1:] == [
            "application/pkcs7-mime",
            "message/rfc822",
        ]
        collector.received.clear()
        m365.send("mike.carson@enron.com", ["matt.motley@enron.com"], "NDR", variant="ndr")
        assert len(collector.received) == 1
        ndr = collector.received[0][2]
        assert b"X-MS-Exchange-Message-Is-Ndr:" in ndr
        assert unwrap(ndr).kind is Kind.NDR and len(unwrap(ndr).originals) == 1
    finally:
        for rule in (internal, execs):
            m365.control("DELETE", f"journal-rules/{rule['id']}")


def test_unreachable_destination_queues_reports(m365: EmulatorHandle) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    m365.set_journal_smarthost("127.0.0.1", dead)
    rule = m365.add_journal_rule("Dead end", "dead@journal.example")
    try:
        sent = m365.send("mike.carson@enron.com", ["bill.rapp@enron.com"], "Queued")
        assert sent["reports"][0]["ok"] is False and sent["reports"][0]["error"]
        assert sent["reports"][0]["smarthost"] == f"127.0.0.1:{dead}"
        assert m365.control("GET", "journal-log")["queued"] >= 1
        with m365.http() as client:
            refused = client.post(
                f"{m365.base_url}/_emulator/api/journal-rules",
                json={"name": "x", "journal_address": "bill.rapp@enron.com"},
            )
        assert refused.status_code == 400  # the destination can't be an Exchange Online mailbox
    finally:
        m365.control("DELETE", f"journal-rules/{rule['id']}")
        m365.control("POST", "journal-log")
        m365.set_journal_smarthost("127.0.0.1", 2525)
