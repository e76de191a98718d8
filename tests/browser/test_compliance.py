"""Retention and legal hold in a real browser: an Admin creates a retention policy and a
legal hold on one mailbox, applies the policies; the held message survives, the other
goes; an Auditor then reads the entries in the audit log.

The retention run is queued by the page ("Apply policies now") and executed here with
the worker's own entry point (``execute_run``), as ``mailvault worker`` would.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django import Settings

from corpus import archive_settings
from mailvault.accounts.roles import Role
from mailvault.archive.models import Message
from mailvault.archive.services import create_mailbox
from mailvault.compliance.jobs import RETENTION
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.models import JobRun
from mailvault.jobs.runner import execute_run
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import GOOD_PASSWORD, OTHER_PASSWORD, Account, Ui, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.single_db,
    pytest.mark.django_db(transaction=True),
]


def _mail(subject: str) -> bytes:
    return (
        f"From: carol@partner.example\r\nTo: legal@acme\r\nSubject: {subject}\r\n"
        "Date: Mon, 02 Sep 2024 09:00:00 +0000\r\n\r\nbody\r\n"
    ).encode()


@pytest.fixture
def archive(tenant: ProvisionedTenant, settings: Settings, tmp_path: Path) -> dict[str, int]:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    old = timezone.now() - timedelta(days=120)
    ids = {}
    with tenant_context(tenant.tenant):
        legal = create_mailbox("legal@acme")
        sales = create_mailbox("sales@acme")
        for subject, box in (("Held contract", legal), ("Old sales note", sales)):
            message = ingest(
                IngestRequest(_mail(subject), Message.Source.FILE, targets=[Target(box, "Inbox")])
            ).message
            Message.objects.filter(pk=message.pk).update(archived_at=old)
            ids[subject] = message.pk
    return ids


def test_policy_hold_run_survivor_and_audit(
    page: Page, tenant: ProvisionedTenant, archive: dict[str, int], ui: Ui
) -> None:
    admin = make_user(tenant, "adam", [Role.ADMIN], password=GOOD_PASSWORD)
    auditor: Account = make_user(tenant, "audrey", [Role.AUDITOR], password=OTHER_PASSWORD)
    ui.admin_sign_in(page, admin.username, admin.password)

    page.get_by_role("link", name="Retention Policies").click()
    expect(page.get_by_test_id("retention-policies")).to_contain_text("Default: keep forever")
    # The default keep-forever policy would protect everything: deactivate it.
    page.get_by_role("link", name="Default: keep forever").click()
    page.get_by_label("Enabled").uncheck()
    page.get_by_role("button", name="Save").click()
    page.get_by_role("link", name="Add policy").click()
    page.get_by_label("Name", exact=True).fill("Ninety days")
    page.get_by_label("Retention period (days)").fill("90")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("retention-policies")).to_contain_text("Ninety days")

    page.get_by_role("link", name="Legal Holds").click()
    form = page.get_by_test_id("hold-form")
    form.get_by_label("Name", exact=True).fill("Case Legal")
    form.get_by_label("Holds").select_option("mailbox")
    form.get_by_label("Mailbox").select_option(label="legal@acme")
    form.get_by_label("Reason").fill("Pending litigation")
    form.get_by_role("button", name="Put on hold").click()
    expect(page.get_by_test_id("legal-holds")).to_contain_text("Case Legal")
    expect(page.get_by_test_id("legal-holds")).to_contain_text("Mailbox legal@acme")

    page.get_by_role("link", name="Retention Policies").click()
    page.get_by_role("link", name="Dry run").click()
    expect(page.get_by_test_id("dry-run-summary")).to_contain_text(
        "1 message would be deleted now; 1 kept under legal hold"
    )
    expect(page.get_by_test_id("dry-run")).to_contain_text("Old sales note")
    expect(page.get_by_test_id("dry-run")).not_to_contain_text("Held contract")

    page.get_by_role("link", name="Back to the policies").click()
    page.get_by_test_id("retention-run-now").click()
    with tenant_context(tenant.tenant):
        run = JobRun.objects.get(process_type=RETENTION)
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    page.reload()
    expect(page.get_by_text("2 expired message(s); 1 deleted.")).to_be_visible()
    expect(page.get_by_text("1 under legal hold")).to_be_visible()
    with tenant_context(tenant.tenant):
        remaining = set(Message.objects.values_list("pk", flat=True))
    assert remaining == {archive["Held contract"]}

    page.get_by_role("button", name="Sign out").click()
    ui.admin_sign_in(page, auditor.username, auditor.password)
    page.goto("/adminaccess/audit/")
    log = page.locator("main")
    expect(log).to_contain_text("compliance.hold.create")
    expect(log).to_contain_text("compliance.delete.retention")
    expect(log).to_contain_text("compliance.retention.created")
