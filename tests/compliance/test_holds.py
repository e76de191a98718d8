"""Legal holds and compliance deletion through the pages: Admin Access holds, the
Compliance role's search/delete/holds in Web Access, and four-eyes approval."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from factories import client_for
from mailvault.archive.models import Message
from mailvault.compliance import deletion
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import ApprovalRequest, DeletionLogEntry
from mailvault.ingestion.types import Target

from .retention_world import World, keeper_fixture, mail  # noqa: F401

OLD = timezone.now() - timedelta(days=400)


def admin_of(w: World) -> Client:
    return client_for(w.admin)


def test_admin_creates_and_releases_holds(keeper: World) -> None:
    client = admin_of(keeper)
    page = client.get("/adminaccess/legal-holds/")
    assert page.status_code == 200
    response = client.post(
        "/adminaccess/legal-holds/",
        {"name": "Case Smith", "kind": "query", "query": "merger", "reason": "litigation"},
    )
    assert response.status_code == 302
    hold = LegalHold.objects.get(name="Case Smith")
    assert hold.kind == "query" and hold.created_by_name == "adam@keeper" and hold.active
    bad = client.post(
        "/adminaccess/legal-holds/",
        {"name": "Broken", "kind": "query", "query": 'subject:"unclosed', "reason": "x"},
    )
    assert bad.status_code == 200 and not LegalHold.objects.filter(name="Broken").exists()
    client.post(f"/adminaccess/legal-holds/{hold.pk}/release/", {"reason": "settled"})
    hold.refresh_from_db()
    assert hold.released_at is not None and hold.release_reason == "settled"
    # A Reader cannot open the Admin page, an Admin cannot open the Compliance pages.
    assert client_for(keeper.reader).get("/adminaccess/legal-holds/").status_code == 403
    assert client.get("/webaccess/compliance/").status_code == 403


def test_compliance_creates_holds_in_web_access(keeper: World) -> None:
    officer = client_for(keeper.officer)
    assert officer.get("/webaccess/compliance/holds/").status_code == 200
    response = officer.post(
        "/webaccess/compliance/holds/",
        {"name": "Box hold", "kind": "mailbox", "mailbox": keeper.inbox.pk, "reason": "audit"},
    )
    assert response.status_code == 302
    hold = LegalHold.objects.get(name="Box hold")
    assert hold.mailbox == keeper.inbox and hold.active
    assert hold.created_by_name == keeper.officer.username
    bad = officer.post(
        "/webaccess/compliance/holds/",
        {"name": "Broken", "kind": "query", "query": 'subject:"unclosed', "reason": "x"},
    )
    assert bad.status_code == 200 and not LegalHold.objects.filter(name="Broken").exists()
    assert bad.context["form"].non_field_errors()  # the reason is shown on the form
    assert client_for(keeper.reader).get("/webaccess/compliance/holds/").status_code == 403


def test_compliance_searches_everything_and_deletes_unless_held(keeper: World) -> None:
    held = keeper.put(mail("Pineapple held"), archived_at=OLD)
    loose = keeper.put(
        mail("Pineapple loose"),
        Target(keeper.other, "Inbox"),
        archived_at=OLD,
        envelope=["hidden@keeper"],
    )
    officer = client_for(keeper.officer)
    page = officer.get("/webaccess/compliance/", {"q": "bcc:hidden@keeper"})
    assert [m.pk for _h, m in page.context["rows"]] == [loose.pk]  # envelope Bcc searchable
    LegalHold.objects.create(
        name="Box", kind="mailbox", mailbox=keeper.inbox, reason="r", created_by_name="t"
    )
    page = officer.get("/webaccess/compliance/", {"q": "pineapple"})
    assert {m.pk for _h, m in page.context["rows"]} == {held.pk, loose.pk}
    assert page.context["held"] == {held.pk}
    refused = officer.post(
        "/webaccess/compliance/delete/",
        {"message": [held.pk, loose.pk], "reason": "cleanup"},
        follow=True,
    )
    assert "Nothing was deleted" in refused.content.decode()
    assert Message.objects.filter(pk__in=[held.pk, loose.pk]).count() == 2
    officer.post("/webaccess/compliance/delete/", {"message": [loose.pk], "reason": "cleanup"})
    assert not Message.objects.filter(pk=loose.pk).exists()
    entry = DeletionLogEntry.objects.get(message_pk=loose.pk)
    assert entry.purpose == "compliance" and entry.reason == "cleanup"
    # A Reader has no compliance pages at all.
    assert client_for(keeper.reader).get("/webaccess/compliance/").status_code == 403


def test_four_eyes_deletion_and_release(keeper: World) -> None:
    settings = deletion.retention_settings()
    settings.four_eyes = True
    settings.save()
    target = keeper.put(mail("to be deleted"), archived_at=OLD)
    first = client_for(keeper.officer)
    second = client_for(keeper.second_officer)
    first.post("/webaccess/compliance/delete/", {"message": [target.pk], "reason": "gdpr"})
    assert Message.objects.filter(pk=target.pk).exists()  # waits for approval
    request = ApprovalRequest.objects.get()
    assert request.status == "pending" and request.message_ids == [target.pk]
    # The requester cannot approve their own request.
    first.post(f"/webaccess/compliance/approvals/{request.pk}/", {"decision": "approve"})
    request.refresh_from_db()
    assert request.status == "pending"
    second.post(f"/webaccess/compliance/approvals/{request.pk}/", {"decision": "approve"})
    request.refresh_from_db()
    assert request.status == "approved" and request.decided_by_name == "otto@keeper"
    assert not Message.objects.filter(pk=target.pk).exists()

    hold = LegalHold.objects.create(
        name="Tenant", kind="tenant", reason="audit", created_by_name="t"
    )
    first.post(f"/webaccess/compliance/holds/{hold.pk}/release/", {"reason": "done"})
    hold.refresh_from_db()
    assert hold.active
    release = ApprovalRequest.objects.get(kind="release_hold")
    second.post(f"/webaccess/compliance/approvals/{release.pk}/", {"decision": "reject"})
    hold.refresh_from_db()
    release.refresh_from_db()
    assert hold.active and release.status == "rejected"


def test_approval_fails_when_a_hold_came_meanwhile(keeper: World) -> None:
    settings = deletion.retention_settings()
    settings.four_eyes = True
    settings.save()
    target = keeper.put(mail("contested"), archived_at=OLD)
    client_for(keeper.officer).post(
        "/webaccess/compliance/delete/", {"message": [target.pk], "reason": "x"}
    )
    LegalHold.objects.create(name="Late", kind="tenant", reason="r", created_by_name="t")
    request = ApprovalRequest.objects.get()
    client_for(keeper.second_officer).post(
        f"/webaccess/compliance/approvals/{request.pk}/", {"decision": "approve"}
    )
    request.refresh_from_db()
    assert request.status == "failed" and "legal hold" in request.outcome
    assert Message.objects.filter(pk=target.pk).exists()


def test_retention_pages(keeper: World) -> None:
    client = admin_of(keeper)
    page = client.get("/adminaccess/retention/")
    assert page.status_code == 200 and "Default: keep forever" in page.content.decode()
    created = client.post(
        "/adminaccess/retention/add/",
        {
            "name": "Newsletters",
            "enabled": "on",
            "period_days": "30",
            "reference": "archive",
            "scope": "filtered",
            "subject_terms": "newsletter",
            "execution_order": "10",
        },
    )
    assert created.status_code == 302
    keeper.put(mail("Monthly newsletter"), archived_at=OLD)
    from mailvault.compliance.models_retention import RetentionPolicy

    default = RetentionPolicy.objects.get(is_default=True)
    client.post(f"/adminaccess/retention/{default.pk}/", {"execution_order": "0"})  # disable
    default.refresh_from_db()
    assert not default.enabled
    refused = client.post(f"/adminaccess/retention/{default.pk}/delete/", follow=True)
    assert "cannot be deleted" in refused.content.decode()
    dry = client.get("/adminaccess/retention/dry-run/")
    assert len(dry.context["report"].would_delete) == 1
    assert "Monthly newsletter" in dry.content.decode()
    filtered_without_terms = client.post(
        "/adminaccess/retention/add/",
        {
            "name": "Empty",
            "period_days": "1",
            "reference": "archive",
            "scope": "filtered",
            "execution_order": "1",
        },
    )
    assert filtered_without_terms.status_code == 200
    assert not RetentionPolicy.objects.filter(name="Empty").exists()
