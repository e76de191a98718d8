"""Integrity: the store verification job, recovery from the packs, the daily digest."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, timedelta

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from factories import TenantWorld, add_message, raw_message
from mailvault.archive import blobs
from mailvault.archive.models import Message, Placement
from mailvault.archive.store import compaction, store_for
from mailvault.archive.store.records import HEADER_SIZE
from mailvault.compliance import audit, integrity
from mailvault.compliance.audit import digest
from mailvault.compliance.models_audit import AuditEntry
from mailvault.compliance.models_retention import PendingPurge
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun, Severity
from mailvault.jobs.runner import execute_run
from mailvault.tenancy.context import tenant_context
from mailvault.web.views.admin_jobs import schedule_dialog_url


def _verify(triggered_by: str = "test") -> JobRun:
    run = jobs.run_now(
        integrity.VERIFY_PROCESS, integrity.verification(), triggered_by=triggered_by
    )
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def test_verify_job_finds_a_flipped_byte(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    tenant = tenant_a.tenant
    with tenant_context(tenant):
        clean = _verify()
        assert clean.status == JobRun.Status.FINISHED and clean.max_severity == Severity.INFO
        result = integrity.latest_verification()
        assert result is not None and result.last_ok and result.last_mismatches == 0
        assert result.last_checked > 0
        sha = tenant_a.message.sha256
        with store_for(tenant) as store:
            location = store.location(sha)
            assert location is not None
            path = store._packs.path(location.pack)
        position = location.offset + HEADER_SIZE + 3  # inside the record's ciphertext
        data = bytearray(path.read_bytes())
        original = data[position]
        data[position] ^= 0x40
        path.write_bytes(bytes(data))
        try:
            broken = _verify()
        finally:  # the store lives as long as the test module: put the byte back
            data[position] = original
            path.write_bytes(bytes(data))
        assert broken.status == JobRun.Status.FINISHED
        assert broken.max_severity == Severity.ERROR
        errors = list(
            JobMessage.objects.filter(run=broken, severity=Severity.ERROR).values_list(
                "text", flat=True
            )
        )
        assert any(sha in text and f"pack {location.pack}" in text for text in errors), errors
        result = integrity.latest_verification()
        assert result is not None and not result.last_ok and result.last_mismatches >= 1
        (entry,) = AuditEntry.objects.filter(activity="integrity.verify", success=False)
        assert entry.request_id == str(broken.request_id)
    dashboard = admin_client_a.get(reverse("adminaccess:dashboard"))
    assert b'data-testid="dashboard-mismatches"' in dashboard.content
    # "Verify now" in Admin Access queues a run of the tenant's one configuration.
    response = admin_client_a.post(reverse("adminaccess:integrity_verify_now"))
    assert response.status_code == 302
    with tenant_context(tenant):
        queued = JobRun.objects.filter(process_type=integrity.VERIFY_PROCESS).first()
        assert queued is not None and queued.triggered_by == tenant_a.owner.username
        assert queued.status == JobRun.Status.QUEUED
    page = admin_client_a.get(reverse("adminaccess:integrity"))
    assert b"Verify now" in page.content and b'aria-label="Schedule' in page.content
    # The clock icon opens the schedule dialog of the tenant's one configuration.
    with tenant_context(tenant):
        dialog_url = schedule_dialog_url(integrity.VERIFY_PROCESS, integrity.verification())
    assert dialog_url.encode() in page.content
    dialog = admin_client_a.get(dialog_url)
    assert dialog.status_code == 200 and b"Store verification" in dialog.content


def test_recover_rebuilds_deleted_messages_byte_exact(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        add_message(tenant_a.mailbox, "Second one")
        add_message(tenant_a.mailbox, "Third one", folder_path="Archive/2024")
        originals = {m.sha256: m.subject for m in Message.objects.all()}
        assert len(originals) == 3
        Message.objects.all().delete()
        assert not Placement.objects.exists()

        report = integrity.recover(reindex=False)
        assert report.recovered == 3 and report.present == 0 and not report.unreadable
        recovered = {m.sha256: m for m in Message.objects.all()}
        assert set(recovered) == set(originals)
        for sha, message in recovered.items():
            raw = blobs.read_original(message)
            assert hashlib.sha256(raw).hexdigest() == sha
            assert message.subject == originals[sha]  # parsed again from the bytes
            assert message.indexed is False  # marked for the reindex
        assert raw_message("Second one", tenant_a.mailbox.primary_address) in {
            blobs.read_original(m) for m in recovered.values()
        }
        placements = Placement.objects.select_related("mailbox", "folder")
        assert {(p.mailbox.primary_address, p.folder.path) for p in placements} == {
            (f"recovered@{tenant_a.name}", integrity.RECOVERED_FOLDER)
        }

        again = integrity.recover(reindex=False)
        assert (again.recovered, again.present) == (0, 3)
        assert Message.objects.count() == 3

        # Deleted on purpose is not lost: a pending purge, or a store that forgot it.
        doomed = list(Message.objects.filter(subject__in=["Second one", "Third one"]))
        PendingPurge.objects.create(message_pk=doomed[0].pk, sha256=doomed[0].sha256)
        with store_for(tenant_a.tenant) as store:
            assert compaction.forget(store, [doomed[1].sha256]) == 1
        Message.objects.filter(pk__in=[m.pk for m in doomed]).delete()
        skipped = integrity.recover(reindex=False)
        assert (skipped.recovered, skipped.deleted, skipped.present) == (0, 2, 1)
        assert not skipped.unreadable
        PendingPurge.objects.all().delete()
        with store_for(tenant_a.tenant) as store:  # the store knows it again
            store.rebuild_index_from_packs()
    # Now the two count as lost, and the command brings them back.
    out = io.StringIO()
    call_command("recover", "--tenant", tenant_a.name, stdout=out)
    # The reconciliation indexes every unindexed message: all three recovered ones.
    assert "recovered: 2" in out.getvalue() and "indexed: 3" in out.getvalue()
    with tenant_context(tenant_a.tenant):
        assert Message.objects.get(subject="Third one").indexed is True
        assert not Message.objects.filter(indexed=False).exists()


def _expected_digest(shas: list[str]) -> str:
    return hashlib.sha256("".join(f"{s}\n" for s in sorted(shas)).encode()).hexdigest()


def test_daily_digest_is_chained_into_the_audit_log(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        second = add_message(tenant_a.mailbox, "Digest me")
        yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
        start, _ = digest.day_bounds(yesterday)
        Message.objects.filter(pk__in=[tenant_a.message.pk, second.pk]).update(
            archived_at=start + timedelta(hours=5)
        )
        shas = [tenant_a.message.sha256, second.sha256]

        config = digest.configuration()
        (schedule,) = jobs.schedules_for(config)  # daily by default, after midnight UTC
        assert (schedule.kind, schedule.at_time, schedule.time_zone) == ("daily", "00:15", "UTC")
        assert schedule.enabled and schedule.next_run_at is not None
        config.last_day = yesterday - timedelta(days=2)
        config.save()
        run = jobs.run_now(digest.DIGEST_PROCESS, config)
        assert execute_run(run.pk) == JobRun.Status.FINISHED
        entries = list(AuditEntry.objects.filter(activity=digest.ACTIVITY).order_by("seq"))
        assert [e.object for e in entries] == [
            f"day={yesterday - timedelta(days=1)}",
            f"day={yesterday}",
        ]
        assert entries[0].message.startswith("0 messages")
        assert entries[1].message == (f"2 messages archived; sha256={_expected_digest(shas)}")
        config.refresh_from_db()
        assert config.last_day == yesterday
        assert digest.record_day(yesterday) is None  # once per day
        assert audit.validate(tenant_a.tenant).intact
