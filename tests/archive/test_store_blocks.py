"""Small messages stored in blocks: round trips, dedup, crashes, verify, compaction."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import sqlite3
from pathlib import Path

import pytest

from mailvault.archive.store import BlobStore, StoreAuthError, compaction
from mailvault.archive.store.blocks import Block
from mailvault.archive.store.codec import RecordCodec
from mailvault.archive.store.records import (
    HEADER_SIZE,
    KIND_BLOCK,
    KIND_RECIPE,
    PACK_HEADER_SIZE,
    TRAILER_SIZE,
    ScannedRecord,
    scan,
)

from .test_store import KEY, attachment, mime_message

TARGET = 16 * 1024  # small blocks, so a few dozen messages fill several


def small(i: int, words: int = 60) -> bytes:
    rng = random.Random(i)
    body = rng.randbytes(150).hex() + " ".join(
        rng.choice(["alpha", "beta", "gamma", "delta", "R", "lm()"]) for _ in range(words)
    )
    return f"From: a{i}@example.org\r\nSubject: note {i}\r\n\r\n{body}\r\n".encode()


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def records(root: Path) -> list[tuple[int, ScannedRecord]]:
    """Every whole record of every pack file."""
    found = []
    for path in sorted((root / "packs").iterdir()):
        with open(path, "rb") as handle:
            for item in scan(handle, PACK_HEADER_SIZE, path.stat().st_size, resync=True):
                if isinstance(item, ScannedRecord):
                    found.append((int(path.stem), item))
    return found


def block_members(root: Path) -> list[set[bytes]]:
    """The member SHA-256s of every block record in the packs (decrypted)."""
    codec = RecordCodec(KEY)
    out = []
    for _, item in records(root):
        if item.header.kind == KIND_BLOCK:
            block = Block(codec.open(item.header, item.body))
            out.append({member.sha256 for member in block.members()})
    return out


def test_many_small_messages_round_trip_across_blocks(tmp_path: Path) -> None:
    raws = [small(i) for i in range(120)]
    big = os.urandom(200_000)  # its recipe holds 200 KB inline: a record of its own
    with_attachment = mime_message("report", attachment(30_000, 1))
    everything = [*raws, big, with_attachment]
    with BlobStore(tmp_path, KEY, block_target=TARGET) as store:
        refs = store.put_many(everything)
        locations = [store.location(ref.sha256) for ref in refs]
    assert all(location is not None for location in locations)
    slots = [location.slot for location in locations if location is not None]
    assert slots[-2] == -1  # the big one
    assert min(slots[:120]) == 0 and max(slots[:120]) > 10
    blocks_written = {(loc.pack, loc.offset) for loc in locations if loc and loc.slot >= 0}
    assert len(blocks_written) >= 3
    kinds = [item.header.kind for _, item in records(tmp_path)]
    assert kinds.count(KIND_BLOCK) == len(blocks_written)
    with BlobStore(tmp_path, KEY) as store:
        for raw in everything:
            assert store.get(sha(raw)) == raw
        report = store.verify()
    assert report.ok, report.summary()
    assert report.messages == len(everything) and report.blocks == len(blocks_written)


def test_blocks_shrink_the_store(tmp_path: Path) -> None:
    raws = [small(i, words=400) for i in range(200)]
    with BlobStore(tmp_path / "one", KEY, block_target=1) as alone:
        alone.put_many(raws)
    with BlobStore(tmp_path / "blocks", KEY) as together:
        together.put_many(raws)
    size = {
        name: sum(p.stat().st_size for p in (tmp_path / name / "packs").iterdir())
        for name in ("one", "blocks")
    }
    assert size["blocks"] < 0.8 * size["one"], size


def test_dedup_within_the_open_block_and_across_batches(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store:
        with store.batch():
            first = store.put(small(1), durable=False)
            again = store.put(small(1), durable=False)  # still in the open block
            assert first.created and not again.created
            assert store.has(first.sha256) and store.message_count() == 1
            prepared = store.prepare(small(2))
            assert not prepared.sealed  # a small message's recipe travels as plaintext
            assert store.put_prepared(prepared, durable=False).created
            assert not store.put_prepared(store.prepare(small(2)), durable=False).created
        size = sum(p.stat().st_size for p in (tmp_path / "packs").iterdir())
        with store.batch():
            assert not store.put(small(1), durable=False).created
            assert store.put(small(3), durable=False).created
        assert store.message_count() == 3
    assert [len(members) for members in block_members(tmp_path)] == [2]
    # The second batch's one new message was written as a record of its own.
    assert [item.header.sha256.hex() for _, item in records(tmp_path)][-1] == sha(small(3))
    assert sum(p.stat().st_size for p in (tmp_path / "packs").iterdir()) > size


def test_blocks_sealed_ahead_are_appended_whole_when_every_member_is_new(
    tmp_path: Path,
) -> None:
    raws = [small(i) for i in range(60)]
    with BlobStore(tmp_path, KEY, block_target=TARGET) as store:
        prepared = store.prepare_many([*raws, raws[0]])  # one message twice
        sealed = {id(blob.block): blob.block for blob in prepared if blob.block is not None}
        assert len(sealed) >= 3
        assert prepared[-1].block is None  # the repeat is left out of every block
        with store.batch():
            assert store.put_prepared_many(prepared) == 60
        assert store.put_prepared_many(store.prepare_many(raws)) == 0  # all known
        for raw in raws:
            assert store.get(sha(raw)) == raw
    written = {item.header.sha256: item for _, item in records(tmp_path)}
    # The records in the packs are the very blocks the preparing side sealed.
    assert sorted(len(m) for m in block_members(tmp_path)) == sorted(
        len(block.members) for block in sealed.values()
    )
    assert len(written) == len(sealed)


def test_a_block_sealed_ahead_with_a_stored_member_is_not_stored_twice(tmp_path: Path) -> None:
    raws = [small(i) for i in range(40)]
    with BlobStore(tmp_path, KEY, block_target=1 << 20) as store:
        store.put(raws[5])  # stored before: a record of its own
        prepared = store.prepare_many(raws)
        assert len({id(blob.block) for blob in prepared}) == 1  # one block for all 40
        # The same messages prepared again by another worker (one twice in a batch).
        twice = store.prepare_many(raws[30:])
        with store.batch():
            assert store.put_prepared_many([*prepared, *twice]) == 39
        assert store.message_count() == 40
        for raw in raws:
            assert store.get(sha(raw)) == raw
        report = store.verify()
    assert report.ok, report.summary()
    members = block_members(tmp_path)
    # The ready block had a stored member: its 39 new ones were sealed again, once.
    assert [len(m) for m in members] == [39]
    assert bytes.fromhex(sha(raws[5])) not in members[0]


def test_pending_members_read_at_once_and_durable_puts_are_seen_elsewhere(
    tmp_path: Path,
) -> None:
    with BlobStore(tmp_path, KEY) as writer, BlobStore(tmp_path, KEY) as reader:
        pending = [writer.put(small(i), durable=False) for i in range(5)]
        assert writer.get(pending[3].sha256) == small(3)  # served from the open block
        assert writer.location(pending[3].sha256) is None  # not written yet
        assert not reader.has(pending[0].sha256)
        durable = writer.put(small(99))  # seals the open block: durable on return
        assert reader.get(durable.sha256) == small(99)
        assert reader.get(pending[4].sha256) == small(4)
        location = reader.location(pending[4].sha256)
        assert location is not None and location.slot == 4
        with writer.batch():
            later = writer.put(small(100), durable=False)
            also = writer.put(small(101))  # inside a batch: durable when the batch ends
            assert writer.get(also.sha256) == small(101)
            assert not reader.has(later.sha256) and not reader.has(also.sha256)
        assert reader.get(later.sha256) == small(100)
        assert reader.get(also.sha256) == small(101)


def _write_blocks_then_die(root: Path, durable: list[bytes], pending: list[bytes]) -> None:
    store = BlobStore(root, KEY, block_target=TARGET)
    store.put_many(durable)
    for raw in pending:
        store.put(raw, durable=False)  # full blocks are written, nothing is committed
    os._exit(0)


def test_a_torn_block_is_cut_and_whole_uncommitted_blocks_are_indexed_again(
    tmp_path: Path,
) -> None:
    durable = [small(i) for i in range(40)]
    pending = [small(i) for i in range(100, 300)]
    child = multiprocessing.get_context("fork").Process(
        target=_write_blocks_then_die, args=(tmp_path, durable, pending)
    )
    child.start()
    child.join()
    assert child.exitcode == 0
    written = records(tmp_path)
    assert [item.header.kind for _, item in written].count(KIND_BLOCK) >= 4
    last = written[-1][1]
    assert last.header.kind == KIND_BLOCK
    codec = RecordCodec(KEY)
    torn_members = {m.sha256.hex() for m in Block(codec.open(last.header, last.body)).members()}
    pack = tmp_path / "packs" / "00000001.pack"
    with open(pack, "r+b") as handle:  # the crash cut the last block in the middle
        handle.truncate(last.offset + last.header.record_len // 2)

    with BlobStore(tmp_path, KEY) as store:
        for raw in durable:
            assert store.get(sha(raw)) == raw
        whole = [raw for raw in pending if sha(raw) not in torn_members]
        lost = [raw for raw in pending if sha(raw) in torn_members]
        assert whole and lost
        # The whole blocks are indexed again (those never sealed are lost with the torn one).
        found = [raw for raw in whole if store.has(sha(raw))]
        assert len(found) >= 3 * TARGET // len(pending[0])
        for raw in found:
            assert store.get(sha(raw)) == raw
        assert not any(store.has(sha(raw)) for raw in lost)
        assert pack.stat().st_size == last.offset
        store.put_many(lost)
        assert all(store.get(sha(raw)) == raw for raw in lost)
        report = store.verify()
    assert report.ok, report.summary()
    assert report.messages == len(durable) + len(found) + len(lost)


def test_verify_names_every_message_of_a_block_with_a_flipped_byte(tmp_path: Path) -> None:
    raws = [small(i) for i in range(60)]
    with BlobStore(tmp_path, KEY, block_target=TARGET) as store:
        refs = store.put_many(raws)
        victim = store.location(refs[20].sha256)
        assert victim is not None and victim.slot >= 0
        inside = [
            r.sha256
            for r in refs
            if (loc := store.location(r.sha256)) and loc.offset == victim.offset
        ]
        assert len(inside) > 5
        path = tmp_path / "packs" / f"{victim.pack:08d}.pack"
        with open(path, "r+b") as handle:
            handle.seek(victim.offset + HEADER_SIZE + (victim.length - HEADER_SIZE) // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x01]))
        report = store.verify()
        assert sorted((m.pack, m.offset, m.sha256, m.kind) for m in report.mismatches) == sorted(
            (victim.pack, victim.offset, s, "message") for s in inside
        )
        assert all(f"{len(inside)} indexed in it" in m.problem for m in report.mismatches)
        assert report.messages == len(raws) - len(inside)
        with pytest.raises(StoreAuthError, match=refs[20].sha256):
            store.get(refs[20].sha256)
        outside = next(r for r in refs if r.sha256 not in inside)
        assert store.get(outside.sha256) == raws[refs.index(outside)]


def test_rebuild_index_from_packs_recovers_block_members(tmp_path: Path) -> None:
    raws = [small(i) for i in range(80)] + [mime_message("att", attachment(20_000, 2))]
    with BlobStore(tmp_path, KEY, block_target=TARGET, pack_size_limit=30_000) as store:
        refs = store.put_many(raws)
        before = {r.sha256: store.location(r.sha256) for r in refs}
    assert len(list((tmp_path / "packs").iterdir())) > 1
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with BlobStore(tmp_path, KEY) as store:  # rebuilt on open
        assert {r.sha256: store.location(r.sha256) for r in refs} == before
        report = store.rebuild_index_from_packs(authenticate=False)  # blocks are opened anyway
        assert report.messages == len(raws) and not report.damaged
        assert {r.sha256: store.location(r.sha256) for r in refs} == before
        assert all(store.get(r.sha256) == raw for r, raw in zip(refs, raws, strict=True))
        from mailvault.archive.store.maintenance import message_shas_in_packs

        listed = {s for _, shas in message_shas_in_packs(store) for s in shas}
        assert listed == set(before)


def test_forget_and_compact_reseal_a_block_without_the_deleted_message(tmp_path: Path) -> None:
    raws = [small(i) for i in range(30)]
    with BlobStore(tmp_path, KEY) as store:
        refs = store.put_many(raws)
        doomed = refs[7]
        location = store.location(doomed.sha256)
        assert location is not None and location.slot == 7
        assert compaction.garbage(store).dead_bytes == 0
        assert compaction.forget(store, [doomed.sha256]) == 1
        waste = compaction.garbage(store)
        assert waste.partly_dead_blocks == 1
        assert 0 < waste.dead_bytes < location.length // 10
        report = compaction.compact(store)
        assert report.blocks_resealed == 1 and report.packs_rewritten
        assert not store.has(doomed.sha256)
        for ref, raw in zip(refs, raws, strict=True):
            if ref != doomed:
                assert store.get(ref.sha256) == raw
        assert store.verify().ok
        assert compaction.garbage(store).dead_bytes == 0
        # Its bytes are gone from the packs: the one block left no longer holds it.
        assert [len(m) for m in block_members(tmp_path)] == [29]
        assert not any(bytes.fromhex(doomed.sha256) in m for m in block_members(tmp_path))
        # Forget all but one: the block is sealed anew as that one message's own record.
        assert compaction.forget(store, [r.sha256 for r in refs[1:] if r != doomed]) == 28
        compaction.compact(store)
        kept = store.location(refs[0].sha256)
        assert kept is not None and kept.slot == -1
        assert store.get(refs[0].sha256) == raws[0]
    members = block_members(tmp_path)
    assert not members  # no block left
    on_disk = [item.header for _, item in records(tmp_path)]
    assert [(h.kind, h.sha256.hex()) for h in on_disk] == [(KIND_RECIPE, refs[0].sha256)]


def test_a_block_with_no_live_member_is_dropped(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY, block_target=TARGET) as store:
        first = store.put_many([small(i) for i in range(40)])
        second = store.put_many([small(i) for i in range(100, 110)])
        gone = {store.location(r.sha256).offset for r in first}  # type: ignore[union-attr]
        compaction.forget(store, [r.sha256 for r in first])
        compaction.compact(store)
        assert all(store.get(r.sha256) == small(100 + i) for i, r in enumerate(second))
        assert gone
    assert block_members(tmp_path) == [{bytes.fromhex(r.sha256) for r in second}]


def test_a_store_written_before_blocks_still_reads(tmp_path: Path) -> None:
    """The old format: a message record of its own, an index without the slot column."""
    raw = b"Subject: from an old store\r\n\r\nwritten before blocks existed\r\n"
    with BlobStore(tmp_path, KEY, block_target=1) as store:  # a standalone recipe record
        ref = store.put(raw)
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.executescript(
        """
        CREATE TABLE old (sha BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
            length INTEGER NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO old SELECT sha, pack, offset, length, size FROM messages;
        DROP TABLE messages;
        ALTER TABLE old RENAME TO messages;
        CREATE INDEX messages_location ON messages (pack, offset);
        UPDATE meta SET value = X'31' WHERE key = 'format';
        """
    )
    db.close()
    with BlobStore(tmp_path, KEY) as store:
        assert store.get(ref.sha256) == raw
        location = store.location(ref.sha256)
        assert location is not None and location.slot == -1
        more = store.put_many([small(i) for i in range(10)])
        assert store.get(more[4].sha256) == small(4)
        assert store.verify().ok
    body = records(tmp_path)[0][1]
    assert body.header.kind == KIND_RECIPE and len(body.body) > TRAILER_SIZE
