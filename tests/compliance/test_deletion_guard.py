"""The deletion guard and the deleter: holds win, the minimum retention holds, the guard
fails closed, and a deletion leaves store, records and index consistent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailvault.archive.models import Message, Placement
from mailvault.archive.store import compaction, store_for
from mailvault.compliance import consistency, deletion, holds
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import DeletionLogEntry, PendingPurge
from mailvault.ingestion.types import Target
from mailvault.search import Scope, TenantIndex

from .retention_world import World, base64_payload, keeper_fixture, mail  # noqa: F401

OLD = timezone.now() - timedelta(days=400)


def indexed_ids(w: World) -> set[int]:
    return TenantIndex.open(w.tenant.pk).message_ids()


def test_delete_removes_message_placements_index_and_bytes(keeper: World) -> None:
    shared_attachment = ("report.bin", base64_payload(200_000))
    a = keeper.put(mail("first", attachment=shared_attachment), archived_at=OLD)
    b = keeper.put(mail("second", attachment=shared_attachment), archived_at=OLD)
    with store_for(keeper.tenant) as store:
        size_before = sum(p.stat().st_size for p in (store.root / "packs").iterdir())
    report = deletion.delete_messages(
        [a.pk], purpose=deletion.Purpose.COMPLIANCE, reason="test", actor=keeper.officer
    )
    assert report.deleted == [a.pk]
    assert not Message.objects.filter(pk=a.pk).exists()
    assert not Placement.objects.filter(message_id=a.pk).exists()
    assert a.pk not in indexed_ids(keeper) and b.pk in indexed_ids(keeper)
    assert not PendingPurge.objects.exists()
    assert DeletionLogEntry.objects.get(message_pk=a.pk).actor == "olga@keeper"
    with store_for(keeper.tenant) as store:
        assert not store.has(a.sha256)
        assert store.get(b.sha256)  # the shared attachment chunk is still there
    compacted = deletion.compact_store()
    assert compacted.packs_rewritten
    with store_for(keeper.tenant) as store:
        assert store.get(b.sha256).startswith(b"From: carol")
        assert store.verify().ok
        size_after = sum(p.stat().st_size for p in (store.root / "packs").iterdir())
    # Only a's own small records were freed: the big shared chunk stays, stored once.
    assert size_after < size_before
    deletion.delete_messages(
        [b.pk], purpose=deletion.Purpose.COMPLIANCE, reason="test", actor=keeper.officer
    )
    freed = deletion.compact_store()
    assert freed.chunks_dropped >= 1 and freed.bytes_freed > 200_000
    check = consistency.check()
    assert check.ok, check.problems


def test_holds_win_over_every_deleter(keeper: World) -> None:
    held = keeper.put(mail("held one"), archived_at=OLD)
    free = keeper.put(mail("free one"), Target(keeper.other, "Inbox"), archived_at=OLD)
    holds.create_hold(
        name="Case 1",
        kind=LegalHold.Kind.MAILBOX,
        reason="lawsuit",
        actor=keeper.officer,
        mailbox=keeper.inbox,
    )
    for purpose in deletion.Purpose:
        verdict = deletion.guard([held.pk, free.pk], purpose)
        assert verdict.refused == {held.pk: deletion.REASON_HOLD}
        assert verdict.allowed == {free.pk}
    with pytest.raises(deletion.DeletionRefused):
        deletion.delete_messages(
            [held.pk, free.pk],
            purpose=deletion.Purpose.COMPLIANCE,
            reason="x",
            actor=keeper.officer,
            all_or_nothing=True,
        )
    assert Message.objects.filter(pk__in=[held.pk, free.pk]).count() == 2
    report = deletion.empty_mailbox(keeper.inbox, actor=None)
    assert report.refused == {held.pk: deletion.REASON_HOLD}
    assert Placement.objects.filter(mailbox=keeper.inbox, message=held).exists()
    with pytest.raises(deletion.OffboardingRefused, match="Case 1"):
        deletion.check_offboarding()


def test_query_hold_and_tenant_hold(keeper: World) -> None:
    contract = keeper.put(mail("Merger contract", "secret merger terms"), archived_at=OLD)
    lunch = keeper.put(mail("Lunch", "sandwiches"), archived_at=OLD)
    case = holds.create_hold(
        name="Merger", kind=LegalHold.Kind.QUERY, reason="case", actor=None, query="merger"
    )
    assert holds.held_ids([contract.pk, lunch.pk]) == {contract.pk}
    # A message the index has not seen cannot be judged by a query: held (fail closed).
    Message.objects.filter(pk=lunch.pk).update(indexed=False)
    assert holds.held_ids([lunch.pk]) == {lunch.pk}
    holds.release_hold(case, actor=keeper.officer)
    assert holds.held_ids([contract.pk, lunch.pk]) == set()
    holds.create_hold(name="All", kind=LegalHold.Kind.TENANT, reason="audit", actor=None)
    assert holds.held_ids([contract.pk, lunch.pk]) == {contract.pk, lunch.pk}


def test_minimum_retention_floor(keeper: World) -> None:
    settings = deletion.retention_settings()
    settings.minimum_retention_days = 30
    settings.save()
    young = keeper.put(mail("young"), archived_at=timezone.now() - timedelta(days=10))
    old = keeper.put(mail("old"), archived_at=timezone.now() - timedelta(days=31))
    report = deletion.delete_messages(
        [young.pk, old.pk], purpose=deletion.Purpose.COMPLIANCE, reason="x", actor=None
    )
    assert report.deleted == [old.pk]
    assert report.refused == {young.pk: deletion.REASON_MINIMUM}


def test_guard_fails_closed(keeper: World, monkeypatch: pytest.MonkeyPatch) -> None:
    message = keeper.put(mail("anything"), archived_at=OLD)
    holds.create_hold(
        name="Case", kind=LegalHold.Kind.QUERY, reason="r", actor=None, query="anything"
    )

    def broken(query: str) -> set[int]:
        raise OSError("index unreadable")

    monkeypatch.setattr(holds, "matching_ids", broken)
    with pytest.raises(deletion.GuardFailure):
        deletion.delete_messages(
            [message.pk], purpose=deletion.Purpose.RETENTION, reason="x", actor=None
        )
    assert Message.objects.filter(pk=message.pk).exists()
    assert message.pk in indexed_ids(keeper)


def test_interrupted_purge_is_finished_and_check_proves_it(
    keeper: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = keeper.put(mail("doomed"), archived_at=OLD)
    keep = keeper.put(mail("keeper"), archived_at=OLD)

    def crash(**kwargs: object) -> int:
        raise SystemExit("killed between the database commit and the purge")

    monkeypatch.setattr(deletion, "purge_pending", crash)
    with pytest.raises(SystemExit):
        deletion.delete_messages(
            [doomed.pk], purpose=deletion.Purpose.RETENTION, reason="x", actor=None
        )
    monkeypatch.undo()
    assert not Message.objects.filter(pk=doomed.pk).exists()
    before = consistency.check()
    assert before.pending_purges == 1 and not before.ok
    assert doomed.pk in indexed_ids(keeper)  # not yet purged
    assert deletion.purge_pending() == 1
    deletion.compact_store()
    after = consistency.check()
    assert after.ok, after.problems
    assert doomed.pk not in indexed_ids(keeper) and keep.pk in indexed_ids(keeper)
    hits = TenantIndex.open(keeper.tenant.pk).search("doomed", Scope.whole_tenant())
    assert hits.total == 0


def _store_state(keeper: World, *messages: Message) -> None:
    with store_for(keeper.tenant) as store:
        report = store.verify()
        assert report.ok, report.summary()
        for message in messages:
            assert store.get(message.sha256)


def test_compaction_crash_before_the_index_commit(
    keeper: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = keeper.put(mail("doomed", attachment=("a.bin", base64_payload(30_000, 2))))
    kept = keeper.put(mail("kept", attachment=("b.bin", base64_payload(30_000, 3))))
    deletion.delete_messages(
        [doomed.pk], purpose=deletion.Purpose.COMPLIANCE, reason="x", actor=None
    )

    def power_cut(path: object) -> None:
        raise SystemExit("power cut after writing the new pack")

    monkeypatch.setattr(compaction, "fsync_dir", power_cut)
    with pytest.raises(SystemExit):
        deletion.compact_store()
    monkeypatch.undo()
    _store_state(keeper, kept)  # the index still points at the old, whole pack
    later = keeper.put(mail("after the crash"))  # a writer recovers the half-written pack
    deletion.compact_store()
    _store_state(keeper, kept, later)
    assert consistency.check().ok


def test_compaction_crash_after_the_index_commit(
    keeper: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = keeper.put(mail("doomed", attachment=("a.bin", base64_payload(30_000, 4))))
    kept = keeper.put(mail("kept", attachment=("b.bin", base64_payload(30_000, 5))))
    deletion.delete_messages(
        [doomed.pk], purpose=deletion.Purpose.COMPLIANCE, reason="x", actor=None
    )

    def killed(store: object, retired: list[int], dropped: list[bytes]) -> None:
        raise SystemExit("killed before the old packs were removed")

    monkeypatch.setattr(compaction, "_retire", killed)
    with pytest.raises(SystemExit):
        deletion.compact_store()
    monkeypatch.undo()
    # The old pack is still on disk and still listed: no writer re-indexes the forgotten
    # message from it, and everything live reads from the new pack.
    later = keeper.put(mail("after the kill"))
    with store_for(keeper.tenant) as store:
        assert not store.has(doomed.sha256)
    _store_state(keeper, kept, later)
    report = deletion.compact_store()
    assert report.packs_rewritten
    _store_state(keeper, kept, later)
    with store_for(keeper.tenant) as store:
        assert not store.has(doomed.sha256)
    assert consistency.check().ok


def test_compliance_check_command(keeper: World) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    message = keeper.put(mail("checked"))
    out = StringIO()
    call_command("compliance_check", tenant="keeper", stdout=out)
    assert "consistent" in out.getvalue()
    TenantIndex.open(keeper.tenant.pk).delete([message.pk])  # an index that lost a document
    with pytest.raises(CommandError, match="1 problem"):
        call_command("compliance_check", tenant="keeper", stdout=StringIO())


def test_unfiling_keeps_a_message_filed_elsewhere(keeper: World) -> None:
    both = keeper.put(
        mail("filed twice"), Target(keeper.inbox, "Inbox"), Target(keeper.other, "Inbox")
    )
    only = keeper.put(mail("filed once"), Target(keeper.inbox, "Inbox"))
    index = TenantIndex.open(keeper.tenant.pk)
    inbox_scope = Scope.mailboxes([keeper.inbox.pk])
    assert index.search("filed", inbox_scope).total == 2
    report = deletion.remove_placements(
        Placement.objects.filter(mailbox=keeper.inbox),
        purpose=deletion.Purpose.SOURCE,
        reason="deleted in the source mailbox",
        actor=None,
    )
    assert report.deleted == [only.pk]
    assert Message.objects.filter(pk=both.pk).exists()
    assert list(Placement.objects.filter(message=both).values_list("mailbox_id", flat=True)) == [
        keeper.other.pk
    ]
    # The index follows: the message no longer shows in the emptied mailbox's scope.
    assert index.search("filed", inbox_scope).total == 0
    assert index.search("filed", Scope.mailboxes([keeper.other.pk])).total == 1
    assert consistency.check().ok
