"""Reading the archive in Web Access, in Chromium: a Reader signs in, browses a folder of
real corpus mail, searches with a wildcard and a field, opens a message and downloads
its original; a mailbox not granted to the Reader never shows anywhere."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_django import Settings

from corpus import archive_settings, iter_files, message_root
from mailvault.accounts.models import User
from mailvault.archive.models import Mailbox, Message
from mailvault.archive.services import create_mailbox
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.sources.files import ImportItem, iter_items
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import Account, Ui

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def corpus_mail(root: Path, wanted: int, must_contain: bytes) -> list[bytes]:
    """The first ``wanted`` messages under ``root`` (as the importer reads them) that
    contain ``must_contain`` and have a Subject."""
    found: list[bytes] = []
    for path in iter_files(root):
        for item in iter_items(path, allowed_roots=None):
            raw = item.raw if isinstance(item, ImportItem) else b""
            if must_contain in raw and re.search(rb"(?m)^Subject: *\w", raw):
                found.append(raw)
        if len(found) >= wanted:
            return found[:wanted]
    pytest.fail(f"fewer than {wanted} messages with {must_contain!r} under {root}")


@dataclass
class Archive:
    projects: list[Message]  # enron mail in Inbox/Projects
    html: Message  # a SpamAssassin HTML mail in Inbox
    html_raw: bytes
    secret: Message  # in a mailbox the Reader may not read
    secret_box: Mailbox


@pytest.fixture
def archive(
    settings: Settings, tmp_path: Path, tenant: ProvisionedTenant, reader: Account
) -> Archive:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    enron = corpus_mail(message_root("enron-subset") / "lay-k", 3, b"@enron.com")
    html = corpus_mail(message_root("spamassassin") / "easy-ham-1", 1, b"text/html")[0]
    with tenant_context(tenant.tenant):
        rita = User.objects.get(username=reader.username)
        own = create_mailbox(f"rita@{tenant.tenant.name}", owner=rita)
        secret_box = create_mailbox(f"board@{tenant.tenant.name}")
        projects = [
            ingest(
                IngestRequest(raw, Message.Source.FILE, targets=[Target(own, "Inbox/Projects")])
            ).message
            for raw in enron[:2]
        ]
        html_message = ingest(
            IngestRequest(html, Message.Source.FILE, targets=[Target(own, "Inbox")])
        ).message
        secret = ingest(
            IngestRequest(
                enron[2], Message.Source.FILE, targets=[Target(secret_box, "Board/Minutes")]
            )
        ).message
    return Archive(projects, html_message, html, secret, secret_box)


def expect_secret_absent(page: Page, archive: Archive) -> None:
    content = page.content()
    assert archive.secret_box.primary_address not in content
    assert f"/messages/{archive.secret.pk}/" not in content
    nav = page.get_by_role("navigation", name="Mailboxes and folders")
    if nav.count():
        assert "Board" not in nav.inner_text()


def test_reader_browses_searches_opens_and_downloads(
    page: Page, reader: Account, archive: Archive, ui: Ui, tmp_path: Path
) -> None:
    ui.web_sign_in(page, reader.username, reader.password)
    expect(page).to_have_url(re.compile(r"/webaccess/$"))
    folders = page.get_by_role("navigation", name="Mailboxes and folders")
    expect(folders.get_by_role("link", name=re.compile(r"^rita@"))).to_be_visible()
    expect_secret_absent(page, archive)

    # Browse the folder tree down to Inbox/Projects.
    folders.get_by_role("link", name="Projects", exact=True).click()
    expect(page.get_by_role("heading", name="Inbox/Projects")).to_be_visible()
    listing = page.get_by_test_id("message-list")
    for message in archive.projects:
        expect(listing.get_by_role("link", name=message.subject, exact=True)).to_be_visible()
    expect(listing.get_by_role("link", name=archive.html.subject, exact=True)).to_have_count(0)
    expect_secret_absent(page, archive)

    # Search with a field and a wildcard: every enron mail of the Reader, and only it.
    search = page.get_by_role("searchbox", name="Search the archive")
    search.fill("from:*@enron.com")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/webaccess/search/\?q=from"))
    for message in archive.projects:
        expect(page.get_by_role("link", name=message.subject, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=archive.html.subject, exact=True)).to_have_count(0)
    expect_secret_absent(page, archive)

    word = re.findall(r"[A-Za-z]{4,}", archive.html.subject)[0]
    search = page.get_by_role("searchbox", name="Search the archive")
    search.fill(f"subject:{word[:3].lower()}*")
    search.press("Enter")
    link = page.get_by_role("link", name=archive.html.subject, exact=True)
    expect(link).to_be_visible()

    # Open it: subject, headers and the sandboxed body frame.
    link.click()
    expect(page.get_by_test_id("message-subject")).to_have_text(archive.html.subject)
    frame = page.locator("iframe.body")
    expect(frame).to_have_count(1)
    assert frame.get_attribute("sandbox") is not None

    # Download the original: the very bytes that were imported.
    with page.expect_download() as info:
        page.get_by_test_id("download-eml").click()
    target = tmp_path / "downloaded.eml"
    info.value.save_as(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(archive.html_raw).hexdigest() == archive.html.sha256

    # The ungranted mailbox and its message stay out of reach by URL too.
    response = page.goto(f"/webaccess/messages/{archive.secret.pk}/")
    assert response is not None and response.status == 404
    response = page.goto(f"/webaccess/?mailbox={archive.secret_box.pk}")
    assert response is not None and response.status == 404
    page.goto("/webaccess/")
    search = page.get_by_role("searchbox", name="Search the archive")
    search.fill(f'subject:"{archive.secret.subject}"')
    search.press("Enter")
    expect(page.get_by_role("link", name=archive.secret.subject, exact=True)).to_have_count(0)
    expect_secret_absent(page, archive)
