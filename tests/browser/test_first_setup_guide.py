"""first-setup-m365.md end to end in Chromium, step by step in the guide's order, against
the Microsoft 365 emulator (its sign-in, consent and Purview pages play Microsoft's).

The customer signs in with the provisioned credentials, looks at the dashboard, connects
the tenant (Directory Services > Add, Connect Tenant), schedules the synchronization,
grants Reader and Admin to synchronized groups; the synchronized admin signs in with
Microsoft and deletes the provisioned admin; a journal endpoint and its journal rule in
Purview; an archiving profile for all mailboxes with a Once schedule; a folder
synchronization with its schedule. Then a message sent inside the tenant is journaled
(report over SMTP into the journal mailbox), its recipient files it into Inbox/Projects,
the folder synchronization files the journaled copy there (matched by content, stored
once) and the recipient, signed in to Web Access with Microsoft, finds it there.

Schedules run as ``mailvault scheduler`` runs them (one pass with the clock moved past
their next occurrence); the worker thread executes the runs. Every step leaves a numbered
screenshot under ``SHOTS_DIR/test_first_setup_guide_end_to_end/``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from mailvault.accounts.models import Group, User
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.directory.models import DirectoryService
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

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

DIRECTORY = "Contoso Entra ID"
ENDPOINT = "Microsoft 365 Journal"
PROFILE = "Microsoft 365 initial archiving"
FOLDER_SYNC = "Microsoft 365 folders"
RULE = "Journal to Mailvault"
SUBJECT = "Quarterly plan, final"


def _open_run(page: Page, config_name: str) -> str:
    """Compliance > Process Log: the run of ``config_name``, opened and waited for."""
    Guide.menu(page, "Process Log")
    row = page.get_by_test_id("run-row").filter(has_text=config_name).first
    expect(row).to_be_visible()
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/adminaccess/process-log/\d+/$"))
    return Guide.wait_run_finished(page)


def _schedule(page: Page, row_link: str, runs: str, **fields: str) -> None:
    page.get_by_role("link", name=row_link).click()
    dialog = Guide.dialog(page)
    dialog.get_by_label("Runs").select_option(label=runs)
    for label, value in fields.items():
        dialog.get_by_label(label).fill(value)


def _save_schedule(page: Page, saved: str) -> None:
    dialog = Guide.dialog(page)
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_test_id("schedule-saved")).to_contain_text(saved)


def _close_dialog(page: Page) -> None:
    dialog = Guide.dialog(page)
    dialog.get_by_role("link", name="Close").click()
    expect(dialog).to_be_hidden()


def _tenant_taken_over(page: Page, tenant_id: str) -> None:
    """The form shows the directory service's tenant id and a fresh connection test."""
    check = page.get_by_test_id("tenant-check")
    expect(check.get_by_test_id("tenant-id")).to_have_text(tenant_id)
    expect(check.get_by_test_id("tenant-connection")).to_contain_text(
        f"Connected to tenant {tenant_id}"
    )


def _reader_with_mailbox(env: GuideEnv, admin: User) -> tuple[str, str]:
    """A synchronized member of Mailvault Readers (not the admin) whose archive mailbox
    exists, and another synchronized user with a mailbox to write to them."""
    readers = Group.objects.get(name="Mailvault Readers")
    boxes = {
        box.owner_id: box.primary_address
        for box in Mailbox.objects.filter(kind=Mailbox.Kind.USER, owner__isnull=False)
    }
    members = [
        u for u in readers.members.order_by("username") if u.pk in boxes and u.pk != admin.pk
    ]
    assert members, "no synchronized reader has a mailbox"
    recipient = members[0]
    sender = next(
        boxes[u.pk]
        for u in User.objects.filter(source=User.Source.DIRECTORY).order_by("username")
        if u.pk in boxes and u.pk != recipient.pk
    )
    return boxes[recipient.pk], sender


def _move_to_projects(env: GuideEnv, address: str, message_id: str) -> None:
    """The recipient files the message into Inbox/Projects (in Outlook: a Graph move)."""
    m365 = env.m365
    inbox = m365.graph("GET", f"/users/{address}/mailFolders/inbox").json()["id"]
    children = m365.graph("GET", f"/users/{address}/mailFolders/{inbox}/childFolders").json()
    projects = next(f["id"] for f in children["value"] if f["displayName"] == "Projects")
    listing = m365.graph(
        "GET",
        f"/users/{address}/mailFolders/{inbox}/messages",
        params={"$select": "id,internetMessageId", "$top": "100"},
    ).json()
    mid = next(m["id"] for m in listing["value"] if m["internetMessageId"] == message_id)
    moved = m365.graph(
        "POST", f"/users/{address}/messages/{mid}/move", json={"destinationId": projects}
    )
    assert moved.status_code == 201, moved.text


def test_first_setup_guide_end_to_end(
    guide_env: GuideEnv,  # noqa: F811
    customer: ProvisionedTenant,  # noqa: F811
    journey: Journey,  # noqa: F811
    worker: WorkerThread,  # noqa: F811
) -> None:
    m365 = guide_env.m365
    worker.start()
    admin = journey.person(clipboard=True)

    # --- Login: the provisioned credentials, at a URL ending on /adminaccess.
    Guide.admin_login(admin, customer.admin_username, customer.admin_password)
    assert customer.admin_username == "admin@democustomer"
    expect(admin).to_have_url(re.compile(r"/adminaccess/password/$"))
    journey.step(admin, "Login with the provisioned credentials")
    admin.get_by_label("Current password").fill(customer.admin_password)
    admin.get_by_label("New password", exact=True).fill(GOOD_PASSWORD)
    admin.get_by_label("Repeat new password").fill(GOOD_PASSWORD)
    admin.get_by_role("button", name="Change password").click()

    # --- Admin Access at a glance: the dashboard and the main menu.
    expect(admin).to_have_url(re.compile(r"/adminaccess/dashboard/$"))
    expect(admin.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(admin.get_by_test_id("tenant-name")).to_have_text("Demo Customer")
    expect(admin.get_by_role("navigation", name="Admin Access menu")).to_be_visible()
    journey.step(admin, "Dashboard")

    # --- Directory Service: Add, name, Microsoft Entra ID, Connect Tenant.
    Guide.menu(admin, "Directory Services")
    admin.get_by_role("link", name="Add directory service").click()
    dialog = Guide.dialog(admin)
    dialog.get_by_label("Name", exact=True).fill(DIRECTORY)
    dialog.get_by_label("Type").select_option(label="Microsoft Entra ID")
    with admin.context.expect_page() as tab_info:
        dialog.get_by_role("link", name="Connect Tenant").click()
    portal = tab_info.value
    Guide.microsoft_sign_in(portal, m365.admin_upn, m365.user_password)
    expect(portal.get_by_role("heading", name="Permissions requested")).to_be_visible()
    journey.step(portal, "Microsoft 365 asks for admin consent")
    portal.get_by_role("button", name="Accept").click()
    expect(portal.get_by_test_id("consent-done")).to_contain_text(m365.tenant_id)
    portal.close()
    expect(dialog.get_by_test_id("consent-result")).to_contain_text(m365.tenant_id)
    expect(dialog.get_by_label("Tenant ID")).to_have_value(m365.tenant_id)
    journey.step(admin, "The dialog shows the tenant id")
    dialog.get_by_role("button", name="Save").click()
    directory_row = admin.get_by_test_id("directory-row").filter(has_text=DIRECTORY)
    expect(directory_row).to_contain_text(m365.tenant_id)
    journey.step(admin, "Directory service saved")

    # --- Its schedule (clock icon), periodic; the scheduler runs it; the process log.
    _schedule(admin, f"Schedule {DIRECTORY}", "Every N minutes", **{"Every (minutes)": "60"})
    _save_schedule(admin, "Every 60 minutes")
    journey.step(admin, "Directory synchronization schedule")
    _close_dialog(admin)
    expect(directory_row).to_contain_text("Every 60 minutes")
    assert len(scheduler_pass(timedelta(minutes=61))) == 1
    messages = _open_run(admin, DIRECTORY)
    assert "Synchronization finished." in messages
    journey.step(admin, "Process log of the directory synchronization")
    Guide.menu(admin, "Domains")
    expect(admin.get_by_role("cell", name="contoso.com", exact=True)).to_be_visible()
    journey.step(admin, "Synchronized domains")

    # --- Groups: Reader for everyone who needs Web Access, Admin for the admins.
    for group, role in (("Mailvault Readers", "Reader"), ("Mailvault Admins", "Admin")):
        Guide.menu(admin, "Groups")
        admin.get_by_role("link", name=f"Permissions of {group}").click()
        admin.get_by_role("checkbox", name=re.compile(rf"^{role} —")).check()
        journey.step(admin, f"{role} role for {group}")
        admin.get_by_role("button", name="Save").click()
        expect(admin.get_by_role("status")).to_be_visible()
    with tenant_context(customer.tenant):
        synced_admin = Group.objects.get(name="Mailvault Admins").members.order_by("username")[0]
        assert synced_admin.source == User.Source.DIRECTORY and "admin" in synced_admin.roles
        admin_upn = synced_admin.username
        recipient, sender = _reader_with_mailbox(guide_env, synced_admin)

    # --- The synchronized admin signs in (with Microsoft) and deletes the provisioned one.
    admin.get_by_role("button", name="Sign out").click()
    boss = journey.person(clipboard=True)
    Guide.admin_login(boss, admin_upn, "")
    Guide.microsoft_sign_in(boss, admin_upn, m365.user_password)
    expect(boss).to_have_url(re.compile(r"/adminaccess/dashboard/$"))
    journey.step(boss, "The synchronized admin in Admin Access")
    Guide.menu(boss, "Users")
    row = boss.get_by_role("row").filter(has_text=customer.admin_username)
    boss.once("dialog", lambda confirm: confirm.accept())
    row.get_by_role("button", name="Delete").click()
    expect(boss.get_by_role("status")).to_contain_text(f"{customer.admin_username} deleted.")
    expect(boss.get_by_role("row").filter(has_text=customer.admin_username)).to_have_count(0)
    journey.step(boss, "The provisioned admin is deleted")

    # --- Journal endpoint: a new journal mailbox from "+", Save, copy the SMTP address.
    Guide.menu(boss, "Journal Endpoints")
    boss.get_by_role("link", name="Add journal endpoint").click()
    dialog = Guide.dialog(boss)
    dialog.get_by_label("Name", exact=True).fill(ENDPOINT)
    dialog.get_by_role("link", name="New journal mailbox").click()
    new_mailbox = dialog.get_by_test_id("new-mailbox")
    new_mailbox.get_by_label("Mailbox address").fill("journal@democustomer")
    new_mailbox.get_by_label("Mailbox name").fill("Journal")
    new_mailbox.get_by_role("button", name="Create mailbox").click()
    expect(dialog.get_by_test_id("mailbox-created")).to_be_visible()
    journey.step(boss, "Journal endpoint dialog")
    dialog.get_by_role("button", name="Save", exact=True).click()
    saved = dialog.get_by_test_id("journal-endpoint-saved")
    saved.get_by_role("button", name="Copy").click()
    expect(saved.get_by_role("status")).to_have_text("Copied.")
    smtp_address = str(boss.evaluate("navigator.clipboard.readText()"))
    assert smtp_address.endswith("@journal.mailvault.example")
    journey.step(boss, "The SMTP address to copy")
    _close_dialog(boss)
    guide_env.listener.directory.load()  # the listener reloads its endpoints every few seconds

    # --- Purview (the emulator) as the tenant's Global Administrator: Journal rules > New
    # rule, the copied address.
    purview = boss.context.new_page()
    purview.goto(f"{m365.base_url}/purview/journalrules")
    Guide.microsoft_sign_in(purview, m365.admin_upn, m365.user_password)  # a Global Admin
    expect(purview.get_by_role("heading", name="Journal rules")).to_be_visible()
    purview.get_by_role("link", name="New rule").click()
    purview.get_by_label("Send journal reports to").fill(smtp_address)
    purview.get_by_label("Journal rule name").fill(RULE)
    purview.get_by_label("All messages").check()
    journey.step(purview, "New journal rule in Purview")
    purview.get_by_role("button", name="Next").click()
    expect(purview.get_by_role("heading", name="Review and finish")).to_be_visible()
    purview.get_by_role("button", name="Submit").click()
    expect(purview.get_by_text(smtp_address)).to_be_visible()
    journey.step(purview, "The journal rule")
    purview.close()
    rules = m365.control("GET", "journal-rules")["rules"]
    assert [(r["name"], r["journal_address"]) for r in rules] == [(RULE, smtp_address)]

    # --- Archiving profile: Microsoft 365, multiple mailboxes, the directory service.
    Guide.menu(boss, "Archiving Profiles")
    boss.get_by_role("link", name="Add profile").click()
    boss.get_by_label("Name").fill(PROFILE)
    boss.get_by_label("Type").select_option(label="Microsoft 365")
    boss.get_by_label("Mode").select_option(label="Multiple mailboxes")
    boss.get_by_label("Directory service").select_option(label=DIRECTORY)
    _tenant_taken_over(boss, m365.tenant_id)
    journey.step(boss, "Archiving profile")
    boss.get_by_role("button", name="Save").click()
    profile_row = boss.get_by_test_id("profile-row").filter(has_text=PROFILE)
    expect(profile_row).to_be_visible()

    # --- Its Once schedule, at least a minute ahead; the scheduler runs it once.
    _schedule(boss, f"Schedule {PROFILE}", "Once", **{"Date and time": Guide.once_value(0)})
    dialog = Guide.dialog(boss)
    dialog.get_by_label("Time zone").select_option(value="UTC")
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_role("alert")).to_contain_text("at least 1 minute in the future")
    dialog.get_by_label("Date and time").fill(Guide.once_value(3))
    _save_schedule(boss, "Once")
    journey.step(boss, "Once schedule of the archiving profile")
    _close_dialog(boss)
    assert scheduler_pass(timedelta(minutes=5)) != []
    messages = _open_run(boss, PROFILE)
    assert re.search(r"[1-9]\d* messages fetched", messages), messages
    assert "0 failed" in messages
    journey.step(boss, "Process log of the archiving profile")

    # --- Folder synchronization: M365, multiple mailboxes, Never delete, no user sync.
    Guide.menu(boss, "Folder Synchronizations")
    boss.get_by_role("link", name="Add folder synchronization").click()
    boss.get_by_label("Name").fill(FOLDER_SYNC)
    boss.get_by_label("Type").select_option(label="Microsoft 365")
    boss.get_by_label("Mode").select_option(label="Multiple mailboxes")
    boss.get_by_label("Directory service").select_option(label=DIRECTORY)
    _tenant_taken_over(boss, m365.tenant_id)
    expect(boss.get_by_label("Delete in Mailbox")).to_have_value("never")
    expect(boss.get_by_label("Synchronize Users")).not_to_be_checked()
    journey.step(boss, "Folder synchronization")
    boss.get_by_role("button", name="Save").click()
    sync_row = boss.get_by_test_id("folder-sync-row").filter(has_text=FOLDER_SYNC)
    expect(sync_row).to_contain_text("Never delete")
    _schedule(boss, f"Schedule {FOLDER_SYNC}", "Every N minutes", **{"Every (minutes)": "15"})
    _save_schedule(boss, "Every 15 minutes")
    journey.step(boss, "Folder synchronization schedule")
    _close_dialog(boss)
    Guide.menu(boss, "Schedules")  # the same schedules, in the Archiving section
    for name, text in ((DIRECTORY, "Every 60 minutes"), (FOLDER_SYNC, "Every 15 minutes")):
        expect(boss.get_by_test_id("schedule-row").filter(has_text=name)).to_contain_text(text)
    expect(boss.get_by_test_id("schedule-row").filter(has_text=PROFILE)).to_contain_text("Once")
    journey.step(boss, "Schedules")

    # --- Mail flows: journaled on the way, filed into Inbox/Projects by its recipient.
    sent = m365.send(sender, [recipient], SUBJECT, "The plan for next quarter is attached.")
    assert [r["ok"] for r in sent["reports"]] == [True], sent
    assert guide_env.deliver_journal(expected=1) == 1
    _move_to_projects(guide_env, recipient, sent["internetMessageId"])
    assert scheduler_pass(timedelta(minutes=16)) != []
    messages = _open_run(boss, FOLDER_SYNC)
    assert "0 failed" in messages
    journey.step(boss, "Process log of the folder synchronization")
    with tenant_context(customer.tenant):
        copies = list(Message.objects.filter(message_id=sent["internetMessageId"]))
        assert len(copies) == 1  # stored once: the journaled copy
        assert copies[0].source == Message.Source.SMTP
        where = set(
            Placement.objects.filter(message=copies[0]).values_list(
                "mailbox__primary_address", "folder__path"
            )
        )
    assert "journal@democustomer" in {box for box, _ in where}, where
    assert (recipient, "Inbox/Projects") in where, where
    assert (recipient, "Inbox") not in where, where  # it was moved out of the Inbox

    # --- Web Access: the recipient signs in with Microsoft and finds it in Projects.
    user = journey.person()
    user.goto("/webaccess/")
    user.get_by_label("Username").fill(recipient)
    user.get_by_role("button", name="Next").click()
    Guide.microsoft_sign_in(user, recipient, m365.user_password)
    expect(user).to_have_url(re.compile(r"/webaccess/$"))
    journey.step(user, "Web Access for a synchronized user")
    folders = user.get_by_role("navigation", name="Mailboxes and folders")
    folders.get_by_role("link", name="Projects", exact=True).click()
    listing = user.get_by_test_id("message-list")
    listing.get_by_role("link", name=SUBJECT, exact=True).click()
    expect(user.get_by_test_id("message-subject")).to_have_text(SUBJECT)
    journey.step(user, "The journaled message in Inbox/Projects")
    worker.stop()
    assert len(journey.shots) >= 20 and all(p.stat().st_size > 0 for p in journey.shots)
    with tenant_context(customer.tenant):
        assert DirectoryService.objects.get().name == DIRECTORY
