"""Index lifecycle: freshness, upsert, delete, reindex, reconcile, directories, tenants."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import override_settings

from mailvault.search import IndexDocument, IndexSchemaMismatch, Scope, TenantIndex

from .conftest import make_doc

WHOLE = Scope.whole_tenant()


def found(index: TenantIndex, query: str, scope: Scope = WHOLE) -> set[int]:
    return {h.message_id for h in index.search(query, scope, limit=1000).hits}


def test_an_empty_index_answers_every_kind_of_query(index: TenantIndex) -> None:
    for query in ["", "word", "auto*", "*mobile", '"a b"', "from:*x.org", "size:>1KB"]:
        assert index.search(query, WHOLE).total == 0
    assert index.count() == 0


def test_added_mail_is_searchable_immediately(index: TenantIndex) -> None:
    assert found(index, "zebra") == set()
    index.add([make_doc(1, body="a zebra crossing")])
    assert found(index, "zebra") == {1}
    index.add([make_doc(2, subject="zebra again")])
    assert found(index, "zebra") == {1, 2}


def test_commits_by_another_instance_are_seen_without_reopening(tmp_path: Path) -> None:
    # Two TenantIndex objects on one directory stand for a web and an ingest process.
    reader = TenantIndex.open(7, base_dir=tmp_path)
    assert found(reader, "okapi") == set()
    TenantIndex._instances.clear()
    writer = TenantIndex.open(7, base_dir=tmp_path)
    assert writer is not reader
    writer.add([make_doc(1, body="an okapi")])
    assert found(reader, "okapi") == {1}


def test_adding_again_replaces(index: TenantIndex) -> None:
    index.add([make_doc(1, body="first version", mailbox_ids=[1])])
    index.add([make_doc(1, body="second version", mailbox_ids=[1, 2])])
    assert index.count() == 1
    assert found(index, "first") == set()
    assert found(index, "second", Scope.mailboxes([2])) == {1}
    # Without replace, a caller that knows the ids are new skips the delete.
    index.add([make_doc(2, body="third")], replace=False)
    assert index.message_ids() == {1, 2}
    # Many at once (deleted by one query before they are added), one given twice: the
    # last one counts, and the others of the batch are not touched.
    docs = [make_doc(n, body=f"batch {n}", mailbox_ids=[3]) for n in range(1, 40)]
    docs.append(make_doc(7, body="seventh again", mailbox_ids=[4]))
    assert index.add(docs) == 39
    assert index.count() == 39
    assert found(index, "batch", Scope.mailboxes([3])) == set(range(1, 40)) - {7}
    assert found(index, "seventh", Scope.mailboxes([4])) == {7}
    assert found(index, "second OR third") == set()


def test_delete(index: TenantIndex) -> None:
    index.add([make_doc(i, body="common word") for i in range(1, 6)])
    index.delete([2, 4, 99])
    assert found(index, "common") == {1, 3, 5}
    assert index.message_ids() == {1, 3, 5}


def test_reindex_replaces_everything_in_one_commit(index: TenantIndex) -> None:
    index.add([make_doc(i, body="old") for i in range(1, 4)])
    assert index.reindex(make_doc(i, body="new") for i in range(10, 12)) == 2
    assert found(index, "old") == set()
    assert found(index, "new") == {10, 11}
    index.clear()
    assert index.count() == 0 and index.message_ids() == set()


def test_failed_batch_leaves_index_untouched(index: TenantIndex) -> None:
    index.add([make_doc(1, body="kept")])

    def docs() -> object:
        yield make_doc(2, body="half")
        raise RuntimeError("extraction failed")

    with pytest.raises(RuntimeError):
        index.add(docs())  # type: ignore[arg-type]
    assert index.message_ids() == {1}
    index.add([make_doc(3, body="later")])  # the writer lock was released
    assert index.message_ids() == {1, 3}


def test_message_ids_for_reconcile(index: TenantIndex) -> None:
    assert index.message_ids() == set()
    index.add(make_doc(i) for i in range(1, 1201))
    archived = set(range(1, 1301))
    assert archived - index.message_ids() == set(range(1201, 1301))


def test_tenants_have_separate_directories(
    open_index: Callable[[object], TenantIndex], tmp_path: Path
) -> None:
    a, b = open_index(1), open_index(2)
    a.add([make_doc(1, body="alpha secret", mailbox_ids=[5])])
    b.add([make_doc(1, body="beta", mailbox_ids=[5])])
    assert a.path != b.path and a.path.parent == b.path.parent
    assert found(b, "secret") == set()
    assert found(b, "secret", Scope.mailboxes([5])) == set()
    assert found(a, "secret", Scope.mailboxes([5])) == {1}


def test_documents_of_a_foreign_tenant_never_answer(tmp_path: Path) -> None:
    # Even a directory copied under the wrong tenant id answers nothing: every document
    # carries its tenant and every query requires it.
    TenantIndex.open("t1", base_dir=tmp_path / "x").add([make_doc(1, body="leak")])
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "t1").rename(tmp_path / "y" / "t2")
    moved = TenantIndex.open("t2", base_dir=tmp_path / "y")
    assert moved.count() == 1
    assert found(moved, "leak") == set()
    assert found(moved, "") == set()


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "x" * 65, "a b"])
def test_tenant_ids_cannot_escape_the_index_directory(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="tenant id"):
        TenantIndex.open(bad, base_dir=tmp_path)


def test_default_directory_comes_from_settings(tmp_path: Path) -> None:
    with override_settings(MAILVAULT_INDEX_DIR=tmp_path / "idx"):
        index = TenantIndex.open(42)
    assert index.path == (tmp_path / "idx" / "42").resolve()
    assert (index.path / "meta.json").exists()


def test_schema_version_mismatch_asks_for_reindex(tmp_path: Path) -> None:
    index = TenantIndex.open(3, base_dir=tmp_path)
    index.add([make_doc(1)])
    (index.path / "mailvault-index.json").write_text(json.dumps({"schema_version": 0}))
    TenantIndex._instances.clear()
    with pytest.raises(IndexSchemaMismatch, match="reindex"):
        TenantIndex.open(3, base_dir=tmp_path)
    TenantIndex.destroy(3, base_dir=tmp_path)
    assert TenantIndex.open(3, base_dir=tmp_path).count() == 0


def test_index_document_validates() -> None:
    with pytest.raises(ValueError, match="timezone"):
        IndexDocument(message_id=1, mailbox_ids=[1], date=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        IndexDocument(message_id=-1, mailbox_ids=[1], date=datetime(2024, 1, 1, tzinfo=UTC))


def test_empty_reader_scope_finds_nothing(index: TenantIndex) -> None:
    index.add([make_doc(1, mailbox_ids=[1])])
    assert index.search("", Scope.mailboxes([])).total == 0
    assert index.search("", Scope.mailboxes([1])).total == 1


def test_a_second_writer_waits_for_the_first(tmp_path: Path) -> None:
    first = TenantIndex.open(8, base_dir=tmp_path)
    TenantIndex._instances.clear()
    second = TenantIndex.open(8, base_dir=tmp_path)
    held = first._index.writer()  # another process mid-batch holds the directory lock
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(second.add([make_doc(1)])))
    worker.start()
    worker.join(0.5)
    assert done == []  # still waiting for the lock, not failed
    held.wait_merging_threads()  # releases the lock
    worker.join(10)
    assert done == [1]
    assert first.message_ids() == {1}
