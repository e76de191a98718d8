"""Issue 5 in a real browser, the path of first-setup-m365.md "Create a Journaling
Endpoint": Archiving > Journal Endpoints > Add, a name, "+" to create the journal mailbox
right in the dialog, Save; the dialog stays open on the SMTP address, Copy puts it on the
clipboard (the readonly field holds and selects it), and the list shows the endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from pytest_django import Settings

from mailvault.archive.models import Mailbox
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import Account, Ui

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JOURNAL_DOMAIN = "journal.mailvault.example"


def test_add_endpoint_with_a_new_journal_mailbox_and_copy_its_address(
    page: Page,
    context: BrowserContext,
    tenant: ProvisionedTenant,
    ready_admin: Account,
    ui: Ui,
    settings: Settings,
    shots_dir: Path,
) -> None:
    settings.MAILVAULT_JOURNAL_DOMAIN = JOURNAL_DOMAIN
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name="Journal Endpoints"
    ).click()
    expect(page.get_by_role("heading", name="Journal Endpoints")).to_be_visible()
    page.get_by_role("link", name="Add journal endpoint").click()
    dialog = page.locator("dialog#mv-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Add journal endpoint")
    dialog.get_by_label("Name", exact=True).fill("Microsoft 365")

    # "+": a journal mailbox made right here; a domain the tenant lacks is refused first.
    dialog.get_by_role("link", name="New journal mailbox").click()
    new_mailbox = dialog.get_by_test_id("new-mailbox")
    new_mailbox.get_by_label("Mailbox address").fill("journal@elsewhere.example")
    new_mailbox.get_by_role("button", name="Create mailbox").click()
    expect(dialog.get_by_test_id("new-mailbox")).to_contain_text(
        "elsewhere.example is not a domain of this tenant"
    )
    new_mailbox = dialog.get_by_test_id("new-mailbox")
    new_mailbox.get_by_label("Mailbox address").fill(f"journal@{tenant.tenant.name}")
    new_mailbox.get_by_label("Mailbox name").fill("Journal")
    new_mailbox.get_by_role("button", name="Create mailbox").click()
    expect(dialog.get_by_test_id("mailbox-created")).to_be_visible()
    expect(dialog.get_by_test_id("new-mailbox")).to_have_count(0)
    with tenant_context(tenant.tenant):
        mailbox = Mailbox.objects.get(primary_address=f"journal@{tenant.tenant.name}")
    assert mailbox.kind == Mailbox.Kind.JOURNAL
    expect(dialog.get_by_label("Journal mailbox", exact=True)).to_have_value(str(mailbox.pk))
    page.screenshot(path=str(shots_dir / "journal-endpoint-dialog.png"))

    # Save: the dialog stays open on the SMTP address.
    dialog.get_by_role("button", name="Save", exact=True).click()
    saved = dialog.get_by_test_id("journal-endpoint-saved")
    expect(saved).to_be_visible()
    with tenant_context(tenant.tenant):
        endpoint = JournalEndpoint.objects.get()
    assert endpoint.mailbox_id == mailbox.pk and endpoint.name == "Microsoft 365"
    address = endpoint.smtp_address
    assert address.endswith(f"@{JOURNAL_DOMAIN}")
    expect(saved).to_contain_text("Send journal reports to")
    field = saved.get_by_label("SMTP address")
    expect(field).to_have_value(address)
    expect(field).not_to_be_editable()

    saved.get_by_role("button", name="Copy").click()
    expect(saved.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == address
    # The fallback: the readonly field holds the address, selected whole on focus.
    page.evaluate("document.activeElement.blur()")
    field.focus()
    selected = page.evaluate(
        "() => { const f = document.getElementById('smtp-address');"
        " return f.value.substring(f.selectionStart, f.selectionEnd); }"
    )
    assert selected == address
    page.screenshot(path=str(shots_dir / "journal-endpoint-saved.png"))

    # Close: the list shows the endpoint, its address, mailbox and counters.
    saved.get_by_role("link", name="Close").click()
    expect(dialog).to_be_hidden()
    row = page.get_by_test_id("endpoint-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Microsoft 365")
    expect(row).to_contain_text(f"journal@{tenant.tenant.name}")
    expect(row.get_by_test_id("smtp-address")).to_have_text(address)
    expect(row.get_by_test_id("endpoint-state")).to_have_text("Enabled")
    expect(row.get_by_test_id("endpoint-accepted")).to_have_text("0")
    expect(row.get_by_test_id("endpoint-last-received")).to_have_text("never")
    row.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == address
    page.screenshot(path=str(shots_dir / "journal-endpoints-list.png"), full_page=True)
