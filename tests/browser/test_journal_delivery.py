"""Issue 5 end to end in Chromium: an admin creates a journal endpoint in Admin Access and
copies its SMTP address from the dialog; a journal report sent to that address with
smtplib reaches the real listener (on loopback); the endpoint's counters on the
list go up, and a Compliance user finds the journaled original in the journal mailbox in
Web Access.

The listener runs in this process on a free port; the spool consumer and the counter
flush (threads of ``mailvault smtpd`` in production) run from the test thread, so all
database work stays on the live server's test database.
"""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_django import Settings

from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox
from mailvault.archive.services import create_mailbox
from mailvault.sources.smtp.consumer import SpoolConsumer
from mailvault.sources.smtp.endpoints import EndpointDirectory
from mailvault.sources.smtp.fastdata import FastController
from mailvault.sources.smtp.listener import Authenticator, GroupCommitter, JournalHandler
from mailvault.sources.smtp.spool import Spool
from mailvault.sources.smtp.tls import server_context
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import Account, Ui, make_user

pytestmark = [pytest.mark.browser, pytest.mark.single_db, pytest.mark.django_db(transaction=True)]

JOURNAL_DOMAIN = "journal.mailvault.example"
SUBJECT = "Board minutes, journaled"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class InProcessListener:
    def __init__(self, root: Path) -> None:
        self.spool = Spool(root / "spool")
        self.directory = EndpointDirectory()
        self.committer = GroupCommitter(self.spool)
        self.handler = JournalHandler(self.directory, self.committer)
        self.consumer = SpoolConsumer(self.spool)
        self.port = free_port()
        self.controller = FastController(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname=JOURNAL_DOMAIN,
            decode_data=False,
            enable_SMTPUTF8=True,
            tls_context=server_context(),
            authenticator=Authenticator(self.directory),
            auth_require_tls=True,
            auth_required=False,
        )

    def process(self) -> int:
        """What the listener's threads do every second: roll, count, ingest."""
        self.spool.roll_if_due(force=True)
        self.handler.counters.flush()
        return self.consumer.drain()


@pytest.fixture
def listener(settings: Settings, tmp_path: Path) -> Iterator[InProcessListener]:
    settings.MAILVAULT_JOURNAL_DOMAIN = JOURNAL_DOMAIN
    settings.MAILVAULT_STORE_DIR = tmp_path / "store"
    settings.MAILVAULT_INDEX_DIR = tmp_path / "index"
    settings.VAR_DIR = tmp_path
    running = InProcessListener(tmp_path)
    running.committer.start()
    running.controller.start()
    yield running
    running.controller.stop()
    running.committer.stop()


def journal_report(to: str, name: str) -> bytes:
    original = (
        f"From: Ann <ann@{name}>\r\nTo: ben@{name}\r\nSubject: {SUBJECT}\r\n"
        f"Message-ID: <minutes@{name}>\r\nDate: Tue, 3 Nov 2026 09:00:00 +0000\r\n\r\n"
        "The board approved the budget.\r\n"
    ).encode()
    return (
        (
            f"From: journal@{name}\r\nTo: {to}\r\nSubject: {SUBJECT}\r\nX-MS-Journal-Report:\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            f"Content-Type: text/plain\r\n\r\nSender: ann@{name}\r\nSubject: {SUBJECT}\r\n"
            f"Message-ID: <minutes@{name}>\r\nTo: ben@{name}\r\n--b\r\n"
            "Content-Type: message/rfc822\r\n\r\n"
        ).encode()
        + original
        + b"\r\n--b--\r\n"
    )


def test_create_endpoint_deliver_a_report_and_find_it(
    page: Page,
    context: BrowserContext,
    browser: Browser,
    live_server: object,
    tenant: ProvisionedTenant,
    ready_admin: Account,
    ui: Ui,
    listener: InProcessListener,
    shots_dir: Path,
) -> None:
    name = tenant.tenant.name
    with tenant_context(tenant.tenant):
        journal = create_mailbox(f"journal@{name}", kind=Mailbox.Kind.JOURNAL)
    compliance = make_user(tenant, "cora", [Role.COMPLIANCE], password="Qu1et-Harbor-8475")
    context.grant_permissions(["clipboard-read", "clipboard-write"])

    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    page.goto("/adminaccess/")
    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name="Journal Endpoints"
    ).click()
    page.get_by_role("link", name="Add journal endpoint").click()
    dialog = page.locator("dialog#mv-dialog")
    dialog.get_by_label("Name", exact=True).fill("Microsoft 365")
    dialog.get_by_label("Journal mailbox", exact=True).select_option(str(journal.pk))
    dialog.get_by_role("button", name="Save", exact=True).click()
    saved = dialog.get_by_test_id("journal-endpoint-saved")
    saved.get_by_role("button", name="Copy").click()
    expect(saved.get_by_role("status")).to_have_text("Copied.")
    address = str(page.evaluate("navigator.clipboard.readText()"))
    assert re.fullmatch(rf"j-[0-9a-f]{{32}}@{re.escape(JOURNAL_DOMAIN)}", address)

    # The listener learns about the new endpoint (it reloads every few seconds).
    listener.directory.load()
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=20) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail(f"journal@{name}", [f"x{address}"], b"Subject: x\r\n\r\nx\r\n")
        smtp.sendmail(f"journal@{name}", [address], journal_report(address, name))
    assert listener.process() == 1

    saved.get_by_role("link", name="Close").click()
    row = page.get_by_test_id("endpoint-row")
    expect(row.get_by_test_id("endpoint-accepted")).to_have_text("1")
    expect(row.get_by_test_id("endpoint-rejected")).to_have_text("0")
    expect(row.get_by_test_id("endpoint-last-received")).to_have_text(
        re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    )
    page.screenshot(path=str(shots_dir / "journal-endpoint-counters.png"), full_page=True)

    # Web Access, as Compliance: the original is in the journal mailbox.
    web = browser.new_context(base_url=str(live_server))
    try:
        reader = web.new_page()
        ui.web_sign_in(reader, compliance.username, compliance.password)
        folders = reader.get_by_role("navigation", name="Mailboxes and folders")
        folders.get_by_role("link", name=re.compile(rf"^journal@{re.escape(name)}")).click()
        listing = reader.get_by_test_id("message-list")
        listing.get_by_role("link", name=SUBJECT, exact=True).click()
        expect(reader.get_by_test_id("message-subject")).to_have_text(SUBJECT)
        reader.screenshot(path=str(shots_dir / "journal-message-webaccess.png"), full_page=True)
    finally:
        web.close()
