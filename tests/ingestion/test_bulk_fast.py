"""The bulk import's fast paths give the same archive as the plain ones.

- ``Ingestor.submit()`` records one batch while forked workers prepare the next;
  the messages, placements, stored bytes and index must be what ``flush()`` gives.
- Messages recorded by a batch are built from the values inserted (``INSERT …
  RETURNING``), not read back: they must equal what the database returns.
- Index documents are built when a batch is recorded but committed later; a message
  filed elsewhere in between is indexed with every mailbox it is in.
- With ``transaction_seconds`` several batches share one database transaction: their
  documents wait for its commit, the store is synced once just before it, and a failure
  loses nothing (while recording: the group rolls back and a new run records it again;
  elsewhere: the batches recorded whole are kept).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from pytest_django import Settings

from corpus import archive_settings
from mailvault.accounts import services as accounts
from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.bulk import _adapter as bulk_adapter
from mailvault.archive.bulk import insert_rows
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.archive.store import BlobStore, compaction, store_for
from mailvault.ingestion import steps
from mailvault.ingestion.background import StoreWriter
from mailvault.ingestion.grouped_transaction import GroupedTransaction
from mailvault.ingestion.parse import parse_message
from mailvault.ingestion.pipeline import Ingestor, ingest
from mailvault.ingestion.reconcile import reconcile_index
from mailvault.ingestion.recording import MESSAGE_FIELDS, Recorder
from mailvault.ingestion.types import IngestRequest, IngestResult, Target
from mailvault.search import Scope, TenantIndex
from mailvault.search.services import search_for_user
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant

FILE = Message.Source.FILE


@dataclass
class World:
    tenant: Tenant
    ops: Mailbox
    sales: Mailbox
    ops_reader: User
    sales_reader: User


@pytest.fixture
def world(db: None, settings: Settings, tmp_path: Path) -> Iterator[World]:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    tenant = provision_tenant("bulk").tenant
    with tenant_context(tenant):
        ops_group = accounts.create_group("Ops")
        sales_group = accounts.create_group("Sales")
        for group in (ops_group, sales_group):
            accounts.set_group_roles(group, [Role.READER])
        ops_reader, _ = accounts.create_user(
            "olga", tenant.name, groups=[ops_group], must_change_password=False
        )
        sales_reader, _ = accounts.create_user(
            "sam", tenant.name, groups=[sales_group], must_change_password=False
        )
        ops = create_mailbox("ops@bulk", shared_with=[ops_group])
        sales = create_mailbox("sales@bulk", shared_with=[sales_group])
        yield World(tenant, ops, sales, ops_reader, sales_reader)


def mail(n: int, **headers: str) -> bytes:
    lines = {
        "From": f"Sender {n} <sender{n % 7}@example.com>",
        "To": "list@example.org",
        "Subject": f"Report number {n}",
        "Date": f"Tue, {1 + n % 28:02d} Oct 2024 10:{n % 60:02d}:00 +0200",
        "Message-ID": f"<{n}@example.com>",
        **headers,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in lines.items())
    return f"{head}\r\nbody word{n} and the common word aardvark\r\n".encode()


def concrete(message: Message) -> dict[str, object]:
    """Every column's value, except ``indexed`` (set after the object was built)."""
    fields = Message._meta.concrete_fields
    return {f.attname: getattr(message, f.attname) for f in fields if f.name != "indexed"}


@pytest.mark.parametrize(
    ("store_in_background", "transaction_seconds"), [(False, 0.0), (True, 0.0), (True, 3600.0)]
)
def test_pipelined_import_equals_the_plain_one(
    world: World, store_in_background: bool, transaction_seconds: float
) -> None:
    raws = [mail(n) for n in range(40)]
    raws[5] = mail(5, Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=", Cc="A <a@x.example>, b@y.example")
    # The same bytes in two batches, and twice in one batch (other folders).
    requests = [IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]) for raw in raws]
    requests.insert(12, IngestRequest(raws[3], FILE, targets=[Target(world.ops, "Other")]))
    requests.insert(30, IngestRequest(raws[25], FILE, targets=[Target(world.sales, "")]))
    requests.insert(31, IngestRequest(raws[25], FILE, targets=[Target(world.sales, "x")]))
    results: list[IngestResult] = []
    with Ingestor(
        workers=2,
        index_every=10_000,
        index_interval_s=1e9,
        store_in_background=store_in_background,
        transaction_seconds=transaction_seconds,
    ) as ingestor:
        for start in range(0, len(requests), 9):
            for request in requests[start : start + 9]:
                ingestor.add(request)
            results += ingestor.submit()
        results += ingestor.flush()
    assert len(results) == len(requests)
    assert sum(r.stored for r in results) == len(raws)
    assert [r.placements_added for r in results] == [1] * len(requests)
    assert Message.objects.count() == len(raws)
    assert Placement.objects.count() == len(requests)
    assert not Message.objects.filter(indexed=False).exists()

    with store_for(world.tenant) as store:
        for raw in raws:
            assert store.get(hashlib.sha256(raw).hexdigest()) == raw
    for result in results:
        # Built from the inserted values, equal to what the database holds.
        assert concrete(result.message) == concrete(Message.objects.get(pk=result.message.pk))
    for raw in raws:
        message = Message.objects.get(sha256=hashlib.sha256(raw).hexdigest())
        parsed = parse_message(raw)
        assert (message.subject, message.from_address, message.to, message.cc, message.date) == (
            parsed.subject,
            parsed.from_address,
            parsed.to,
            parsed.cc,
            parsed.date,
        )
    index = TenantIndex.open(world.tenant.pk)
    assert index.message_ids() == set(Message.objects.values_list("pk", flat=True))
    assert search_for_user(world.ops_reader, "aardvark").total == len(raws)
    assert search_for_user(world.sales_reader, "aardvark").total == 1
    assert search_for_user(world.ops_reader, "subject:grüße").total == 1
    found = index.search("word25", Scope.whole_tenant())
    assert [h.mailbox_ids for h in found.hits] == [tuple(sorted({world.ops.pk, world.sales.pk}))]


def test_a_message_filed_elsewhere_before_the_index_commit_keeps_both_mailboxes(
    world: World,
) -> None:
    raw = mail(1)
    with Ingestor(index_every=10_000, index_interval_s=1e9) as ingestor:
        ingestor.add(IngestRequest(raw, FILE, targets=[Target(world.ops, "Inbox")]))
        ingestor.flush()  # recorded; its index document waits for the commit
        # Meanwhile another ingest (the SMTP consumer, say) files it in Sales and
        # indexes it with both mailboxes.
        other = ingest(IngestRequest(raw, FILE, targets=[Target(world.sales, "Inbox")]))
        assert (other.stored, other.placements_added) == (False, 1)
    # The waiting document was built with Ops only; committed last, it must not drop Sales.
    assert search_for_user(world.sales_reader, "word1").total == 1
    assert search_for_user(world.ops_reader, "word1").total == 1


def test_insert_rows_returns_the_new_rows_and_skips_conflicts(world: World) -> None:
    now = timezone.now()

    def row(n: int) -> tuple[object, ...]:
        values: dict[str, object] = {
            "sha256": f"{n:064x}",
            "size": 10,
            "date": None,
            "has_attachments": False,
            "archived_at": now,
            "source": FILE,
            "unparseable": False,
            "indexed": False,
        }
        lists = {"to", "cc", "bcc", "envelope_recipients", "attachment_names"}
        return tuple(values.get(name, [] if name in lists else "s") for name in MESSAGE_FIELDS)

    first = insert_rows(
        Message, MESSAGE_FIELDS, [row(n) for n in range(3)], returning=("sha256", "id")
    )
    assert sorted(sha for sha, _ in first) == [f"{n:064x}" for n in range(3)]
    again = insert_rows(
        Message,
        MESSAGE_FIELDS,
        [row(0), row(1), row(9), row(2)],
        ignore_conflicts=True,
        returning=("sha256", "id"),
    )
    assert [sha for sha, _ in again] == [f"{9:064x}"]
    stored = {m.sha256: m for m in Message.objects.all()}
    assert {sha: m.pk for sha, m in stored.items()} == dict(first + again)
    assert (stored[f"{9:064x}"].archived_at, stored[f"{9:064x}"].to) == (now, [])


def test_insert_rows_adapts_datetimes_exactly_as_django_does(world: World) -> None:
    adapt = bulk_adapter(Message._meta.get_field("date"))
    assert adapt is not None
    values = [
        datetime(2024, 10, 1, 8, 0, tzinfo=UTC),
        datetime(2024, 10, 1, 10, 0, 0, 123456, tzinfo=dt_timezone(timedelta(hours=2))),
        datetime(2003, 4, 1, 0, 6, 38, tzinfo=dt_timezone(-timedelta(hours=15, minutes=59))),
        datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),  # a gap in Berlin
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(1999, 12, 31, 23, 59, 59),  # naive
    ]
    for value in values:
        assert adapt(value) == connection.ops.adapt_datetimefield_value(value), value
    assert adapt(None) is None


def test_id_filters_select_exactly_the_ids(world: World) -> None:
    rng = random.Random(3)
    for _ in range(30):
        ids = sorted(rng.sample(range(1, 400), rng.randint(1, 120)))
        ids += list(range(1000, 1000 + rng.randint(0, 40)))
        selected: list[int] = []
        for where in steps._id_filters(ids, "pk"):
            terms = dict(where.children)
            if "pk__in" in terms:
                selected += terms["pk__in"]
            else:
                selected += range(terms["pk__gte"], terms["pk__lte"] + 1)
        assert sorted(selected) == sorted(set(ids))


def test_background_index_commits_mark_messages_only_once_committed(world: World) -> None:
    """``index_in_background``: commits run beside the ingestion, one at a time; a message
    is marked indexed only after its commit, and the last commit is waited for at exit."""
    with Ingestor(index_every=3, index_in_background=True) as ingestor:
        for n in range(10):
            ingestor.add(IngestRequest(mail(n), FILE, targets=[Target(world.ops, "Inbox")]))
            ingestor.flush()
            ingestor.commit_index()
            commit = ingestor._index_commit
            if commit is not None:  # handed over: marked only once the next one waits for it
                pending = [d.message_id for d in commit.documents]
                assert not Message.objects.filter(pk__in=pending, indexed=True).exists()
    assert ingestor._index_commit is None
    assert Message.objects.filter(indexed=False).count() == 0
    index = TenantIndex.open(world.tenant.pk)
    assert index.count() == 10
    assert search_for_user(world.ops_reader, "word7").total == 1


def test_a_recorded_message_whose_bytes_the_store_lost_is_stored_again_not_recorded_twice(
    world: World,
) -> None:
    """Deduplication asks the database only about messages the store holds (a message is
    recorded only after its bytes are stored). A row whose bytes are gone all the same (a
    deletion that stopped half-way, say) is met when recording, not duplicated."""
    raws = [mail(n) for n in range(6)]
    first = ingest(IngestRequest(raws[2], FILE, targets=[Target(world.ops, "Inbox")]))
    with store_for(world.tenant) as store:
        assert compaction.forget(store, [first.message.sha256]) == 1
        assert not store.has(first.message.sha256)
    with Ingestor(workers=2, index_in_background=True) as ingestor:
        for raw in raws:
            ingestor.add(IngestRequest(raw, FILE, targets=[Target(world.sales, "Lost")]))
        results = ingestor.submit() + ingestor.flush()
    again = next(r for r in results if r.message.sha256 == first.message.sha256)
    assert again.message.pk == first.message.pk
    assert (again.stored, again.placements_added) == (True, 1)
    assert Message.objects.count() == len(raws)
    with store_for(world.tenant) as store:
        assert store.get(first.message.sha256) == raws[2]
    assert search_for_user(world.ops_reader, "word2").total == 1
    assert search_for_user(world.sales_reader, "word2").total == 1


def test_a_bulk_ingest_failing_in_a_broken_transaction_keeps_its_own_error(world: World) -> None:
    """Putting the database settings back at exit must not raise over the real error
    when the connection can no longer run statements."""
    with (
        pytest.raises(RuntimeError, match="the real error"),
        transaction.atomic(),
        Ingestor(index_in_background=True) as ingestor,
    ):
        ingestor.add(IngestRequest(mail(1), FILE, targets=[Target(world.ops, "Inbox")]))
        transaction.set_rollback(True)  # statements now raise TransactionManagementError
        raise RuntimeError("the real error")


def test_a_store_write_failing_in_the_background_records_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(store: object, blobs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(steps, "store_blobs", disk_full)
    with (
        pytest.raises(OSError, match="no space left"),
        Ingestor(store_in_background=True) as ingestor,
    ):
        for n in range(3):
            ingestor.add(IngestRequest(mail(n), FILE, targets=[Target(world.ops, "Inbox")]))
    # The rows were inserted while the store wrote, and rolled back when it failed.
    assert (Message.objects.count(), Placement.objects.count()) == (0, 0)
    assert "store-write" not in {t.name for t in threading.enumerate()}


def test_a_database_error_while_the_store_writes_waits_for_the_store(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished: list[bool] = []
    real = steps.store_blobs

    def slow(store: BlobStore, blobs: list[bytes]) -> None:
        time.sleep(0.3)
        real(store, blobs)
        finished.append(True)

    def broken(*args: object, **kwargs: object) -> None:
        raise DatabaseError("database is locked")

    monkeypatch.setattr(steps, "store_blobs", slow)
    monkeypatch.setattr(Recorder, "_place", broken)
    with (
        pytest.raises(DatabaseError, match="locked"),
        Ingestor(store_in_background=True) as ingestor,
    ):
        ingestor.add(IngestRequest(mail(1), FILE, targets=[Target(world.ops, "Inbox")]))
    assert finished == [True]  # the write was not left running past the error
    assert "store-write" not in {t.name for t in threading.enumerate()}
    assert Message.objects.count() == 0
    with store_for(world.tenant) as store:  # stored bytes with no row: deduplicated later
        assert store.get(hashlib.sha256(mail(1)).hexdigest()) == mail(1)


def _submit_batches(ingestor: Ingestor, world: World, batches: int, size: int = 3) -> None:
    for b in range(batches):
        for n in range(b * size, (b + 1) * size):
            ingestor.add(IngestRequest(mail(n), FILE, targets=[Target(world.ops, "Inbox")]))
        ingestor.submit()


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_add_runs_on_its_own_are_returned_by_the_next_call(
    world: World, workers: int
) -> None:
    """Past max_batch_bytes add() runs the batch itself; without keep_results its results
    come back from the next submit() or flush(), none lost and none twice."""
    returned = []
    limit = 2 * len(mail(0)) + 10  # add() runs every third message
    with Ingestor(keep_results=False, max_batch_bytes=limit, workers=workers) as ingestor:
        for n in range(7):
            ingestor.add(IngestRequest(mail(n), FILE, targets=[Target(world.ops, "Inbox")]))
            if n == 4:
                returned += ingestor.submit()
        returned += ingestor.flush()
        assert ingestor.results == []
    assert sorted(r.message.subject for r in returned) == [f"Report number {n}" for n in range(7)]
    assert all(r.stored and r.placements_added == 1 for r in returned)


def test_grouped_batches_are_indexed_only_once_their_transaction_commits(
    world: World, transactional_db: None
) -> None:
    """An index document must never name a row a rollback could take back (SQLite hands
    a rolled-back id out again), so documents of a grouped transaction wait for it."""
    index = TenantIndex.open(world.tenant.pk)
    with Ingestor(workers=2, index_every=1, transaction_seconds=3600) as ingestor:
        _submit_batches(ingestor, world, 3)  # the first two are recorded, the third prepared
        assert connection.in_atomic_block
        assert Message.objects.count() == 6  # in the open transaction
        assert index.count() == 0  # index_every=1, yet nothing was handed to the index
        ingestor.flush()
        assert not connection.in_atomic_block
        assert index.count() == 9
    assert not Message.objects.filter(indexed=False).exists()
    assert search_for_user(world.ops_reader, "word8").total == 1


def test_grouped_transaction_commits_when_due(world: World, transactional_db: None) -> None:
    with Ingestor(workers=2, transaction_seconds=0.2) as ingestor:
        _submit_batches(ingestor, world, 2)
        assert connection.in_atomic_block
        time.sleep(0.25)
        _submit_batches(ingestor, world, 1)  # records the second batch, then commits
        assert not connection.in_atomic_block
        assert Message.objects.count() == 6


def test_a_failure_in_a_grouped_transaction_loses_nothing(
    world: World, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch failing while it is recorded rolls back the whole group (its batches have
    no savepoints); their bytes are in the store, and the next run records them."""
    real = steps.store_blobs
    calls: list[int] = []

    def third_fails(store: BlobStore, blobs: list[bytes]) -> None:
        calls.append(len(blobs))
        if len(calls) == 3:
            raise OSError("no space left on device")
        real(store, blobs)

    monkeypatch.setattr(steps, "store_blobs", third_fails)
    with (
        pytest.raises(OSError, match="no space left"),
        Ingestor(workers=2, store_in_background=True, transaction_seconds=3600) as ingestor,
    ):
        _submit_batches(ingestor, world, 4)
    assert not connection.in_atomic_block
    assert (Message.objects.count(), Placement.objects.count()) == (0, 0)
    assert TenantIndex.open(world.tenant.pk).count() == 0
    with store_for(world.tenant) as store:  # the first two batches' bytes were stored
        assert len(store.known({hashlib.sha256(mail(n)).hexdigest() for n in range(12)})) == 6

    monkeypatch.setattr(steps, "store_blobs", real)
    with Ingestor(workers=2, store_in_background=True, transaction_seconds=3600) as ingestor:
        _submit_batches(ingestor, world, 4)
        results = ingestor.flush()
    assert sorted(Message.objects.values_list("message_id", flat=True)) == sorted(
        f"<{n}@example.com>" for n in range(12)
    )
    assert Placement.objects.count() == 12
    assert not Message.objects.filter(indexed=False).exists()
    assert search_for_user(world.ops_reader, "word5").total == 1
    assert len(results) == 3  # the last batch; the others were returned by submit()


def test_a_failure_outside_recording_keeps_the_grouped_batches(
    world: World, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the batches were recorded whole (a worker, reading the files)
    commits them; they are indexed by the reconciliation."""
    with (
        pytest.raises(RuntimeError, match="a worker died"),
        Ingestor(workers=2, transaction_seconds=3600) as ingestor,
    ):
        _submit_batches(ingestor, world, 3)  # two batches recorded, the third prepared
        monkeypatch.setattr(Ingestor, "_collect", _worker_died)
        _submit_batches(ingestor, world, 1)
    assert not connection.in_atomic_block
    assert Message.objects.count() == 6
    assert Message.objects.filter(indexed=False).count() == 6
    assert reconcile_index().indexed == 6
    assert search_for_user(world.ops_reader, "word5").total == 1


def _worker_died(*args: object) -> None:
    raise RuntimeError("a worker died")


def test_an_index_commit_still_running_does_not_hold_up_the_ingestion(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents due for the index while the previous commit still runs (tantivy
    merging, say) wait for the next one; the batches go on meanwhile."""
    real = TenantIndex.add

    def slow(index: TenantIndex, docs: list[object], **kwargs: bool) -> int:
        time.sleep(0.5)
        return real(index, docs, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TenantIndex, "add", slow)
    with Ingestor(index_every=1, index_in_background=True) as ingestor:
        ingestor.add(IngestRequest(mail(1), FILE, targets=[Target(world.ops, "Inbox")]))
        ingestor.flush()  # due at once: its commit starts, and takes 0.5 s
        started = time.monotonic()
        for n in range(2, 5):
            ingestor.add(IngestRequest(mail(n), FILE, targets=[Target(world.ops, "Inbox")]))
            ingestor.flush()
        assert time.monotonic() - started < 0.4
        assert len(ingestor._to_index) == 3  # waiting for the next commit
    assert TenantIndex.open(world.tenant.pk).count() == 4
    assert not Message.objects.filter(indexed=False).exists()


def test_grouped_batches_make_the_store_durable_once_before_each_commit(
    world: World, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a grouped transaction the store writes of its batches are fsynced and
    committed once, just before the database commits (not after every batch)."""
    events: list[str] = []
    flush, commit = BlobStore.flush, GroupedTransaction.commit

    def store_flush(store: BlobStore) -> None:
        events.append("store")
        flush(store)

    def db_commit(group: GroupedTransaction) -> bool:
        events.append("database")
        return commit(group)

    monkeypatch.setattr(BlobStore, "flush", store_flush)
    monkeypatch.setattr(GroupedTransaction, "commit", db_commit)
    with Ingestor(workers=2, store_in_background=True, transaction_seconds=3600) as ingestor:
        assert ingestor.store is not None  # opening the store syncs it once: not counted
        events.clear()
        _submit_batches(ingestor, world, 4)  # three batches recorded in one group
        assert "store" not in events
        ingestor.flush()
    assert events[:2] == ["store", "database"]
    assert Message.objects.count() == 12
    with store_for(world.tenant) as store:
        assert store.get(hashlib.sha256(mail(7)).hexdigest()) == mail(7)


def test_a_store_that_cannot_be_synced_commits_no_row_of_the_group(
    world: World, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync_fails(writer: StoreWriter) -> None:
        writer._open_batch = None
        raise OSError("fsync failed")

    monkeypatch.setattr(StoreWriter, "_end_open_batch", fsync_fails)
    with (
        pytest.raises(OSError, match="fsync failed"),
        Ingestor(workers=2, store_in_background=True, transaction_seconds=3600) as ingestor,
    ):
        _submit_batches(ingestor, world, 3)
        ingestor.flush()
    assert not connection.in_atomic_block
    assert (Message.objects.count(), Placement.objects.count()) == (0, 0)
