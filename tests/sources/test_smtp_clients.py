"""``mailvault smtpd`` as a real subprocess, fed by real clients: swaks (STARTTLS, AUTH),
Python's smtplib, and a Postfix instance relaying to it (journal reports passed through
untouched; a ``recipient_bcc_maps`` copy with the original recipient as sub-address).

Engine-agnostic (a private SQLite installation), so single_db.
"""

from __future__ import annotations

import hashlib
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .smtp_servers import (
    AUTH_PASSWORD,
    AUTH_USER,
    SWAKS,
    Installation,
    Postfix,
    Smtpd,
    need,
    wait_for,
)
from .test_journal_variants import original, report

pytestmark = pytest.mark.single_db


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    need(SWAKS)
    return subprocess.run(
        [SWAKS, "--hide-informational", "--timeout", "30", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def archived(installation: Installation, message_id: str, count: int) -> list[str]:
    wait_for(
        lambda: len(installation.placements(message_id)) >= count,
        timeout=30,
        what=f"{message_id} in {count} mailboxes",
    )
    return installation.placements(message_id)


def test_swaks_over_starttls_with_auth_and_the_counters(
    installation: Installation, smtpd: Smtpd, tmp_path: Path
) -> None:
    secured = installation.addresses["secured"]
    body = original("<swaks@contoso.com>")
    data = tmp_path / "report.eml"
    data.write_bytes(report(secured, [body]))
    server = ["--server", f"127.0.0.1:{smtpd.port}", "--from", "jr@contoso.com", "--to", secured]

    refused = swaks(*server, "--data", f"@{data}")  # no AUTH: refused at RCPT
    assert refused.returncode != 0
    assert "530 5.7.0 Authentication required" in refused.stdout

    wrong = swaks(*server, "--tls", "--auth", "LOGIN", "--auth-user", AUTH_USER,
                  "--auth-password", "not-it", "--data", f"@{data}")  # fmt: skip
    assert wrong.returncode != 0 and "535" in wrong.stdout

    sent = swaks(*server, "--tls", "--auth", "LOGIN", "--auth-user", AUTH_USER,
                 "--auth-password", AUTH_PASSWORD, "--data", f"@{data}")  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "STARTTLS" in sent.stdout and "250 2.0.0 OK: archived" in sent.stdout
    assert archived(installation, "<swaks@contoso.com>", 3) == [
        "alice@contoso.com",
        "bob@contoso.com",
        "journal@contoso",
    ]
    [(stored,)] = installation.query(
        "SELECT sha256 FROM archive_message WHERE message_id = ?", "<swaks@contoso.com>"
    )
    assert stored == hashlib.sha256(body).hexdigest()
    # Counted by the listener process, written to the database within about a second.
    local = secured.split("@")[0]
    wait_for(
        lambda: installation.endpoint_counters(local)[0] == 1,
        timeout=10,
        what="the accepted counter",
    )
    accepted, rejected, deferred, last = installation.endpoint_counters(local)
    assert (accepted, rejected, deferred) == (1, 1, 0) and last is not None


def test_smtplib_unknown_addresses_recipient_flood_and_a_clean_restart(
    installation: Installation, smtpd: Smtpd
) -> None:
    address = installation.addresses["open"]
    local = installation.addresses["open_local"]
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("flood@contoso.com")
        assert smtp.rcpt("nobody@journal.test")[0] == 550
        # Thousands of RCPTs: the limit (1,000 by default) answers 452 to the rest.
        codes = [smtp.rcpt(f"{local}+u{i}=contoso.com@journal.test")[0] for i in range(3000)]
        assert codes.count(250) == 1000 and set(codes[1000:]) == {452}
        smtp.rset()
        body = original("<flood@contoso.com>")
        assert smtp.sendmail("flood@contoso.com", [address], body) == {}
    assert archived(installation, "<flood@contoso.com>", 1) == ["journal@contoso"]
    # A refusal counted just before SIGTERM: written on the way out, not lost.
    secured = installation.addresses["secured"]
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("late@contoso.com")
        assert smtp.rcpt(secured)[0] == 530
    smtpd.stop()
    assert installation.endpoint_counters(local)[:3] == (1, 0, 0)
    assert installation.endpoint_counters(secured.split("@")[0])[:3] == (0, 1, 0)


@pytest.fixture
def postfix(smtpd: Smtpd, installation: Installation) -> Iterator[Postfix]:
    local = installation.addresses["open_local"]
    instance = Postfix(smtpd.port)
    bcc = instance.root / "recipient_bcc.regexp"
    bcc.write_text(f"/^([^@+]+)@contoso\\.com$/ {local}+${{1}}=contoso.com@journal.test\n")
    # The organisation's own mail is "delivered" nowhere here; only the journal copy
    # (to the journal domain) goes on to the listener.
    instance.extra = {
        "recipient_bcc_maps": f"regexp:{bcc}",
        "transport_maps": "inline:{ contoso.com=discard: }",
    }
    instance.start()
    yield instance
    instance.stop()


def test_postfix_relays_reports_untouched_and_bcc_copies_by_recipient(
    installation: Installation, postfix: Postfix
) -> None:
    address = installation.addresses["open"]
    first = original("<pf1@contoso.com>", extra=b"X-Long: " + b"a" * 900 + b"\r\n")
    decrypted = original("<pf2@contoso.com>", subject="Grüße 8bit")
    mail = report(address, [first, decrypted])
    plain = (
        b"From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: via postfix\r\n"
        b"Message-ID: <pf-plain@contoso.com>\r\n\r\nhello Bob\r\n"
    )
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
        assert smtp.sendmail("jr@contoso.com", [address], mail) == {}
        assert smtp.sendmail("alice@contoso.com", ["bob@contoso.com"], plain) == {}
    try:
        for mid in ("<pf1@contoso.com>", "<pf2@contoso.com>"):
            assert archived(installation, mid, 3) == [
                "alice@contoso.com",
                "bob@contoso.com",
                "journal@contoso",
            ]
        # Postfix added its Received: line to the plain copy, so compare by Message-ID.
        assert archived(installation, "<pf-plain@contoso.com>", 2) == [
            "bob@contoso.com",
            "journal@contoso",
        ]
    except AssertionError:
        raise AssertionError(postfix.log()[-3000:]) from None
    shas = dict(
        installation.query(
            "SELECT message_id, sha256 FROM archive_message WHERE message_id LIKE '<pf_@%'"
        )
    )
    assert shas == {
        "<pf1@contoso.com>": hashlib.sha256(first).hexdigest(),
        "<pf2@contoso.com>": hashlib.sha256(decrypted).hexdigest(),
    }
    wait_for(postfix.queue_empty, timeout=10, what="Postfix's queue to empty")
