"""Delete in source: only verified, unflagged, unheld copies, only after a clean run."""

from __future__ import annotations

import re

import pytest

from factories import TenantWorld
from mailvault.archive.models import Message
from mailvault.compliance import holds
from mailvault.compliance.models_holds import LegalHold
from mailvault.jobs.models import JobRun
from mailvault.tenancy.context import tenant_context
from sources.profile_helpers import Account, make_profile, run_profile

pytestmark = pytest.mark.django_db


def server_subjects(account: Account, folder: str = "INBOX") -> list[str]:
    account.imap.select_folder(folder, readonly=True)
    uids = account.imap.search("ALL")
    data = account.imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    subjects = [
        bytes(d[b"BODY[HEADER.FIELDS (SUBJECT)]"]).decode().strip().removeprefix("Subject: ")
        for d in data.values()
    ]
    account.imap.unselect_folder()
    return sorted(subjects)


def test_deletes_only_verified_unflagged_messages_and_logs_archive_ids(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.append("INBOX", "plain one")
    account.append("INBOX", "plain two")
    account.append("INBOX", "keep me", flags=(b"\\Flagged",))
    profile = make_profile(tenant_a, account, delete_in_source=True)

    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert server_subjects(account) == ["keep me"]
    with tenant_context(tenant_a.tenant):
        ids = {
            m.subject: m.pk
            for m in Message.objects.filter(subject__in=["plain one", "plain two", "keep me"])
        }
    assert len(ids) == 3  # all three are archived, the flagged one too
    deleted = [line for line in log if line.startswith("Deleted in the source mailbox")]
    logged_ids = sorted(int(re.search(r"archive id (\d+)", line)[1]) for line in deleted)  # type: ignore[index]
    assert logged_ids == sorted([ids["plain one"], ids["plain two"]])
    assert any("kept 1 flagged, 0 unverified, 0 on hold" in line for line in log), log


def test_nothing_is_deleted_under_a_legal_hold_or_when_the_guard_errs(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account.append("INBOX", "held one")
    profile = make_profile(tenant_a, account, delete_in_source=True)
    with tenant_context(tenant_a.tenant):
        hold = holds.create_hold(
            name="case", kind=LegalHold.Kind.TENANT, reason="litigation", actor=None
        )
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("kept 0 flagged, 0 unverified, 1 on hold" in line for line in log), log
    assert server_subjects(account) == ["held one"]

    with tenant_context(tenant_a.tenant):
        holds.release_hold(hold, actor=None, reason="done")

    def broken_guard(*args: object, **kwargs: object) -> set[int]:
        raise RuntimeError("hold index unavailable")

    monkeypatch.setattr("mailvault.compliance.deletion.held_ids", broken_guard)
    account.append("INBOX", "second")
    run, log = run_profile(tenant_a, profile)
    assert any(
        "Nothing is deleted in the source mailbox: The legal hold check failed" in line
        and "hold index unavailable" in line
        for line in log
    ), log
    assert server_subjects(account) == ["held one", "second"]


def test_a_copy_that_does_not_verify_is_not_deleted(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store hands back other bytes than were fetched: the hashes differ."""
    from mailvault.archive.store.blobstore import BlobStore

    account.append("INBOX", "tampered")
    profile = make_profile(tenant_a, account, delete_in_source=True)
    real_get = BlobStore.get
    monkeypatch.setattr(BlobStore, "get", lambda self, sha: real_get(self, sha) + b"x")
    _run, log = run_profile(tenant_a, profile)
    assert any("kept 0 flagged, 1 unverified, 0 on hold" in line for line in log), log
    assert server_subjects(account) == ["tampered"]


def test_turned_on_later_deletes_what_earlier_runs_archived(
    tenant_a: TenantWorld, account: Account
) -> None:
    account.append("INBOX", "old one")
    account.append("INBOX", "old flagged", flags=(b"\\Flagged",))
    profile = make_profile(tenant_a, account)
    run_profile(tenant_a, profile)
    assert server_subjects(account) == ["old flagged", "old one"]

    with tenant_context(tenant_a.tenant):
        profile.delete_in_source = True
        profile.save()
    account.append("INBOX", "new one")
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("1 messages fetched" in line for line in log), log
    assert server_subjects(account) == ["old flagged"]
    assert sum(line.startswith("Deleted in the source mailbox") for line in log) == 2, log
