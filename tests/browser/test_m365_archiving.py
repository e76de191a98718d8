"""Issue 7 in a real browser, as the guide says: an archiving profile for a Microsoft 365
mailbox (the emulator, over HTTPS) with a Once schedule (one less than a minute ahead is
refused), run, the process log; a folder synchronization with a recurring schedule, run;
then the mailbox's owner sees its folders with their messages in Web Access."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.test.utils import override_settings
from playwright.sync_api import Page, expect
from pytest_django import Settings

from corpus import archive_settings
from directory.emulator import m365_settings
from m365_emulator.testing import EmulatorHandle, running_emulator
from mailvault.accounts.models import User
from mailvault.accounts.services import add_domain
from mailvault.archive import services as archive
from mailvault.sources.graph import GraphClient, GraphError, GraphSettings
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import Account, Ui
from .test_jobs import WorkerThread, worker  # noqa: F401 - the worker thread fixture

pytestmark = [pytest.mark.browser, pytest.mark.single_db, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def m365(tmp_path: Path, settings: Settings) -> Iterator[EmulatorHandle]:
    for key, value in archive_settings(tmp_path / "archive").items():
        setattr(settings, key, value)
    with (
        running_emulator(fixture="generated", users=6, groups=2, consented=True) as handle,
        override_settings(**m365_settings(handle)),
    ):
        handle.set_faults(retry_after="0.05")
        yield handle


def _mailbox_user(m365: EmulatorHandle) -> str:
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        for user in graph.items("/users", params={"$select": "id,mail,userType"}):
            if user.get("userType") != "Member" or not user.get("mail"):
                continue
            try:
                graph.get(f"/users/{user['id']}/mailboxSettings")
            except GraphError:
                continue
            return str(user["mail"]).casefold()
    raise AssertionError("no user with a mailbox")


def _local(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _wait_finished(page: Page) -> None:
    status = page.get_by_test_id("run-status")
    expect(status).to_have_text(re.compile("Finished|Failed|Cancelled"), timeout=60_000)
    assert status.inner_text().strip() == "Finished", page.get_by_test_id(
        "run-messages"
    ).inner_text()


def test_profile_once_schedule_folder_sync_and_web_access(
    m365: EmulatorHandle,
    page: Page,
    tenant: ProvisionedTenant,
    ready_admin: Account,
    reader: Account,
    ui: Ui,
    worker: WorkerThread,  # noqa: F811
    shots_dir: Path,
) -> None:
    address = _mailbox_user(m365)
    with tenant_context(tenant.tenant):
        add_domain(address.rsplit("@", 1)[1])
        owner = User.objects.get(username=reader.username)
        archive.create_mailbox(address, owner=owner)
    worker.start()
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    menu = page.get_by_role("navigation", name="Admin Access menu")

    # The archiving profile: Microsoft 365, a single mailbox.
    menu.get_by_role("link", name="Archiving Profiles").click()
    page.get_by_role("link", name="Add profile").click()
    page.get_by_label("Name").fill("Initial import")
    page.get_by_label("Type").select_option(label="Microsoft 365")
    page.get_by_label("Mode").select_option(label="Single mailbox")
    page.get_by_label("Mailbox address").fill(address)
    page.get_by_role("button", name="Save").click()
    row = page.get_by_test_id("profile-row").filter(has_text="Initial import")
    expect(row).to_be_visible()

    # Its Once schedule: less than a minute ahead is refused, five minutes ahead is saved.
    row.get_by_role("link", name="Schedule Initial import").click()
    dialog = page.locator("dialog#mv-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Runs").select_option(label="Once")
    dialog.get_by_label("Time zone").select_option(value="UTC")
    dialog.get_by_label("Date and time").fill(_local(datetime.now(UTC) + timedelta(seconds=20)))
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_role("alert")).to_contain_text("at least 1 minute in the future")
    dialog.get_by_label("Date and time").fill(_local(datetime.now(UTC) + timedelta(minutes=5)))
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_test_id("schedule-saved")).to_contain_text("Once")
    page.screenshot(path=str(shots_dir / "m365-profile-once.png"))
    dialog.get_by_role("link", name="Close").click()

    # Run now (the Once schedule would do the same in five minutes) and watch the log.
    row.get_by_role("button", name="Run now").click()
    expect(page).to_have_url(re.compile(r"/adminaccess/process-log/\d+/$"))
    _wait_finished(page)
    messages = page.get_by_test_id("run-messages")
    expect(messages).to_contain_text(re.compile(r"[1-9]\d* messages fetched"))
    expect(messages).to_contain_text("0 failed")
    page.screenshot(path=str(shots_dir / "m365-profile-run.png"), full_page=True)

    # The folder synchronization with a recurring schedule, then a run.
    menu.get_by_role("link", name="Folder Synchronizations").click()
    page.get_by_role("link", name="Add folder synchronization").click()
    page.get_by_label("Name").fill("Mailbox folders")
    page.get_by_label("Type").select_option(label="Microsoft 365")
    page.get_by_label("Mode").select_option(label="Single mailbox")
    page.get_by_label("Mailbox address").fill(address)
    page.get_by_role("button", name="Save").click()
    sync = page.get_by_test_id("folder-sync-row").filter(has_text="Mailbox folders")
    expect(sync).to_contain_text("Never delete")
    sync.get_by_role("link", name="Schedule Mailbox folders").click()
    dialog.get_by_label("Runs").select_option(label="Hourly")
    dialog.get_by_label("Minute of the hour").fill("15")
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_test_id("schedule-saved")).to_contain_text("Hourly")
    dialog.get_by_role("link", name="Close").click()
    expect(sync).to_contain_text("Hourly at minute 15")
    sync.get_by_role("button", name="Run now").click()
    _wait_finished(page)
    expect(page.get_by_test_id("run-messages")).to_contain_text("0 failed")

    # The owner sees the mailbox's folders with their messages in Web Access.
    page.context.clear_cookies()  # the admin signs out
    ui.web_sign_in(page, reader.username, reader.password)
    folders = page.get_by_role("navigation", name="Mailboxes and folders")
    expect(folders.get_by_role("link", name="Inbox", exact=True)).to_be_visible()
    expect(folders.get_by_role("link", name="Sent Items", exact=True)).to_be_visible()
    folders.get_by_role("link", name="Inbox", exact=True).click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    assert page.get_by_test_id("message-list").locator("tbody tr").count() > 0
    page.screenshot(path=str(shots_dir / "m365-web-access-folders.png"), full_page=True)
    worker.stop()
