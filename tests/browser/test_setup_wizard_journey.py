"""The Microsoft 365 / Entra ID setup wizard in Chromium against the Microsoft 365
emulator, ending like first-setup-m365.md: a refused consent makes nothing; then Connect
Tenant, the directory service with its schedule (first synchronization), the journal
mailbox and endpoint with the SMTP address entered in the emulator's Purview journal
rule, the archiving profile run Once, the folder synchronization with its schedule, and
Reader for a group. A message sent in the tenant is journaled, its recipient files it
into Inbox/Projects, the folder synchronization files it there, and the recipient finds
it in Web Access. The wizard then runs a second time and nothing is made twice.

A numbered screenshot per step lands under ``SHOTS_DIR/test_setup_wizard_journey/``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from mailvault.accounts.models import Group, GroupRole
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.directory.models import DirectoryService
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant
from mailvault.web import wizard

from .conftest import GOOD_PASSWORD
from .journey import (  # noqa: F401 - fixtures
    Guide,
    GuideEnv,
    Journey,
    WorkerThread,
    customer,
    guide_env,
    journey,
    scheduler_pass,
    worker,
)

pytestmark = [pytest.mark.browser, pytest.mark.single_db, pytest.mark.django_db(transaction=True)]

READERS = "Mailvault Readers"
RULE = "Journal to Mailvault"
SUBJECT = "Wizard journey: budget review"


def _inventory() -> dict[str, int]:
    """How many of each thing the wizard makes exist (in the active tenant)."""
    return {
        "directory services": DirectoryService.objects.count(),
        "schedules": Schedule.objects.count(),
        "runs": JobRun.objects.count(),
        "journal mailboxes": Mailbox.objects.filter(kind=Mailbox.Kind.JOURNAL).count(),
        "journal endpoints": JournalEndpoint.objects.count(),
        "archiving profiles": ArchivingProfile.objects.count(),
        "folder synchronizations": FolderSynchronization.objects.count(),
        "role grants": GroupRole.objects.count(),
    }


def _consent(page: Page, env: GuideEnv, decision: str) -> str:
    """Connect Tenant: Microsoft's (the emulator's) tab, sign in when asked, decide;
    returns what the tab said at the end."""
    with page.context.expect_page() as tab_info:
        page.get_by_test_id("connect-tenant").click()
    portal = tab_info.value
    heading = portal.get_by_role("heading", name="Permissions requested")
    login = portal.get_by_label("Email, phone, or Skype")
    expect(heading.or_(login)).to_be_visible()
    if login.is_visible():
        Guide.microsoft_sign_in(portal, env.m365.admin_upn, env.m365.user_password)
    expect(heading).to_be_visible()
    portal.get_by_role("button", name=decision).click()
    answer = portal.locator("main").inner_text()
    portal.close()
    return answer


def _wait_for_run(tenant: ProvisionedTenant, process_type: str, timeout: float = 120) -> None:
    """Until the worker finished the latest run of ``process_type``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_context(tenant.tenant):
            run = JobRun.objects.filter(process_type=process_type).order_by("-pk").first()
        if run is not None and run.status not in JobRun.UNFINISHED:
            assert run.status == JobRun.Status.FINISHED, run.status
            return
        time.sleep(0.5)
    raise AssertionError(f"no finished run of {process_type}")


def _people(env: GuideEnv) -> tuple[str, str]:
    """A synchronized member of the Reader group with an archive mailbox, and another
    synchronized user with a mailbox who writes to them."""
    owners = dict(
        Mailbox.objects.filter(kind=Mailbox.Kind.USER, owner__isnull=False).values_list(
            "owner_id", "primary_address"
        )
    )
    readers = [u.pk for u in Group.objects.get(name=READERS).members.order_by("username")]
    recipient = next(pk for pk in readers if pk in owners)
    sender = next(pk for pk in sorted(owners) if pk != recipient)
    return owners[recipient], owners[sender]


def _file_into_projects(env: GuideEnv, address: str, internet_id: str) -> None:
    """The recipient moves the message from Inbox to Inbox/Projects (Outlook does this
    through Graph)."""
    graph = env.m365.graph
    base = f"/users/{address}/mailFolders"
    inbox = graph("GET", f"{base}/inbox").json()["id"]
    folders = graph("GET", f"{base}/{inbox}/childFolders").json()["value"]
    target = {f["displayName"]: f["id"] for f in folders}["Projects"]
    listing = graph("GET", f"{base}/{inbox}/messages", params={"$select": "id,internetMessageId"})
    found = [m for m in listing.json()["value"] if m["internetMessageId"] == internet_id]
    assert found, f"{internet_id} is not in the Inbox of {address}"
    response = graph(
        "POST", f"/users/{address}/messages/{found[0]['id']}/move", json={"destinationId": target}
    )
    assert response.status_code == 201, response.text


def _walk_wizard(admin: Page, steps: Journey, label: str) -> str:
    """Steps 2 to 4 of the wizard (journal, archiving, folders); returns the SMTP address."""
    admin.get_by_test_id("wizard-next").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Step 2 of 5")
    admin.get_by_test_id("wizard-journal-submit").click()
    done = admin.get_by_test_id("wizard-journal-done")
    expect(done).to_be_visible()
    done.get_by_role("button", name="Copy").click()
    expect(done.get_by_role("status")).to_have_text("Copied.")
    address = str(admin.evaluate("navigator.clipboard.readText()"))
    expect(done.get_by_test_id("smtp-address")).to_have_value(address)
    steps.step(admin, f"{label}: journal mailbox, endpoint and the SMTP address")

    admin.get_by_test_id("wizard-next").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Step 3 of 5")
    admin.get_by_test_id("wizard-archiving-submit").click()
    expect(admin.get_by_test_id("wizard-profile")).to_contain_text(wizard.PROFILE_NAME)
    steps.step(admin, f"{label}: archiving profile run once")

    admin.get_by_test_id("wizard-next").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Step 4 of 5")
    admin.get_by_test_id("wizard-folders-submit").click()
    expect(admin.get_by_test_id("wizard-folder-sync")).to_contain_text("Every 15 minutes")
    steps.step(admin, f"{label}: folder synchronization and its schedule")
    return address


def test_setup_wizard_journey(
    guide_env: GuideEnv,  # noqa: F811
    customer: ProvisionedTenant,  # noqa: F811
    journey: Journey,  # noqa: F811
    worker: WorkerThread,  # noqa: F811
) -> None:
    m365 = guide_env.m365
    worker.start()
    admin = journey.person(clipboard=True)
    Guide.admin_login(admin, customer.admin_username, customer.admin_password)
    admin.get_by_label("Current password").fill(customer.admin_password)
    admin.get_by_label("New password", exact=True).fill(GOOD_PASSWORD)
    admin.get_by_label("Repeat new password").fill(GOOD_PASSWORD)
    admin.get_by_role("button", name="Change password").click()
    expect(admin).to_have_url(re.compile(r"/adminaccess/dashboard/$"))

    # --- Setup Wizards > Microsoft 365 / Entra ID.
    Guide.menu(admin, "Setup Wizards")
    admin.get_by_role("link", name="Microsoft 365 / Entra ID").click()
    journey.step(admin, "The wizard before its first run")
    admin.get_by_test_id("wizard-start").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Step 1 of 5")

    # --- A refused consent: a clear message, nothing made.
    with tenant_context(customer.tenant):
        empty = _inventory()
    assert "not connected" in _consent(admin, guide_env, "Cancel").lower()
    expect(admin.get_by_test_id("consent-error")).to_contain_text("Consent was not granted")
    admin.get_by_test_id("wizard-connect-submit").click()
    expect(admin.get_by_test_id("wizard-error")).to_contain_text("Consent was not granted")
    journey.step(admin, "Refused consent")
    with tenant_context(customer.tenant):
        assert _inventory() == empty

    # --- Step 1: Connect Tenant, the tenant id, the directory service and its schedule.
    admin.get_by_role("link", name="Wizard overview").click()
    admin.get_by_test_id("wizard-start").click()
    assert m365.tenant_id in _consent(admin, guide_env, "Accept")
    expect(admin.get_by_test_id("consent-result")).to_contain_text(m365.tenant_id)
    journey.step(admin, "The tenant id after Connect Tenant")
    admin.get_by_test_id("wizard-connect-submit").click()
    expect(admin.locator("ul.messages")).to_contain_text(
        f"Created: Directory service {wizard.DIRECTORY_NAME}"
    )
    expect(admin.get_by_test_id("obj-tenant-id")).to_have_text(m365.tenant_id)
    expect(admin.get_by_test_id("obj-directory-schedule")).to_have_text(
        re.compile("Every 60 minutes")
    )
    journey.step(admin, "Directory service and its schedule")
    _wait_for_run(customer, "directory.sync")

    # --- Steps 2 to 4, and Purview: a journal rule with the SMTP address.
    smtp_address = _walk_wizard(admin, journey, "First run")
    guide_env.listener.directory.load()  # the listener reloads its endpoints every few seconds
    admin.get_by_role("link", name="Journal mailbox and endpoint").click()
    with admin.context.expect_page() as tab_info:
        admin.get_by_test_id("purview-link").click()
    purview = tab_info.value
    expect(purview.get_by_role("heading", name="Journal rules")).to_be_visible()
    purview.get_by_role("link", name="New rule").click()
    purview.get_by_label("Send journal reports to").fill(smtp_address)
    purview.get_by_label("Journal rule name").fill(RULE)
    purview.get_by_label("All messages").check()
    purview.get_by_role("button", name="Next").click()
    purview.get_by_role("button", name="Submit").click()
    expect(purview.get_by_text(smtp_address)).to_be_visible()
    journey.step(purview, "The journal rule in Purview")
    purview.close()
    rules = m365.control("GET", "journal-rules")["rules"]
    assert [(r["name"], r["journal_address"]) for r in rules] == [(RULE, smtp_address)]

    # --- Step 5: Reader for the group of everybody who needs Web Access.
    admin.get_by_role("link", name="Web Access for a group (Reader)").click()
    admin.get_by_label("Group").select_option(label=READERS)
    admin.get_by_test_id("wizard-access-submit").click()
    expect(admin.locator("ul.messages")).to_contain_text(f"Created: Reader role of {READERS}")
    journey.step(admin, "Reader for a group")
    admin.get_by_test_id("wizard-next").click()
    expect(admin.get_by_test_id("wizard-start")).to_have_text("Run again")
    journey.step(admin, "The wizard done")

    # --- The Once schedule runs the archiving profile once (as the scheduler would).
    assert scheduler_pass(timedelta(minutes=6)) != []
    _wait_for_run(customer, "sources.archiving_profile", timeout=240)

    # --- Mail flows: journaled, then filed by its recipient into Inbox/Projects.
    with tenant_context(customer.tenant):
        recipient, sender = _people(guide_env)
    sent = m365.send(sender, [recipient], SUBJECT, "Numbers for the budget review.")
    assert [r["ok"] for r in sent["reports"]] == [True], sent
    assert guide_env.deliver_journal(expected=1) == 1
    _file_into_projects(guide_env, recipient, sent["internetMessageId"])
    # The scheduler, with the clock at the folder synchronization's next run.
    with tenant_context(customer.tenant):
        due = Schedule.objects.get(process_type="sources.folder_sync").next_run_at
    assert due is not None
    queued = scheduler_pass(due - datetime.now(UTC) + timedelta(seconds=1))
    assert queued != []
    _wait_for_run(customer, "sources.folder_sync", timeout=240)
    with tenant_context(customer.tenant):
        stored = Message.objects.get(message_id=sent["internetMessageId"])
        where = set(
            Placement.objects.filter(message=stored).values_list(
                "mailbox__primary_address", "folder__path"
            )
        )
    assert (f"journal@{customer.tenant.default_domain}", "Inbox") in where or any(
        box.startswith("journal@") for box, _ in where
    ), where
    assert (recipient, "Inbox/Projects") in where, where

    # --- The recipient signs in to Web Access with Microsoft and finds it in Projects.
    user = journey.person()
    user.goto("/webaccess/")
    user.get_by_label("Username").fill(recipient)
    user.get_by_role("button", name="Next").click()
    Guide.microsoft_sign_in(user, recipient, m365.user_password)
    expect(user).to_have_url(re.compile(r"/webaccess/$"))
    folders = user.get_by_role("navigation", name="Mailboxes and folders")
    folders.get_by_role("link", name="Projects", exact=True).click()
    user.get_by_test_id("message-list").get_by_role("link", name=SUBJECT, exact=True).click()
    expect(user.get_by_test_id("message-subject")).to_have_text(SUBJECT)
    journey.step(user, "The journaled message in Inbox/Projects in Web Access")
    worker.stop()

    # --- The wizard once more, consent and all: it finds everything and makes nothing.
    with tenant_context(customer.tenant):
        before = _inventory()
    Guide.menu(admin, "Setup Wizards")
    admin.get_by_role("link", name="Microsoft 365 / Entra ID").click()
    admin.get_by_test_id("wizard-start").click()
    assert m365.tenant_id in _consent(admin, guide_env, "Accept")
    expect(admin.get_by_test_id("consent-result")).to_contain_text(m365.tenant_id)
    admin.get_by_test_id("wizard-connect-submit").click()
    expect(admin.locator("ul.messages")).to_contain_text("Already there, kept: Directory service")
    expect(admin.locator("ul.messages")).not_to_contain_text("Created")
    journey.step(admin, "Second run: the directory service is kept")
    assert _walk_wizard(admin, journey, "Second run") == smtp_address
    expect(admin.locator("ul.messages")).not_to_contain_text("Created")
    admin.get_by_test_id("wizard-next").click()
    admin.get_by_label("Group").select_option(label=READERS)
    admin.get_by_test_id("wizard-access-submit").click()
    expect(admin.locator("ul.messages")).to_contain_text("Already there, kept: Reader role")
    journey.step(admin, "Second run: nothing made twice")
    with tenant_context(customer.tenant):
        assert _inventory() == before
        assert before["directory services"] == before["journal endpoints"] == 1
    assert m365.control("GET", "journal-rules")["rules"][0]["journal_address"] == smtp_address
    assert len(journey.shots) >= 15 and all(p.stat().st_size > 0 for p in journey.shots)
