"""Freeing stored bytes: forgetting deleted messages and compacting pack files.

Deleting a message from the store is two steps:

1. :func:`forget` drops the message's recipe from the index (under the write lock). The
   bytes stay in the pack, unreachable; a later ``put`` of the same bytes writes them anew.
2. :func:`compact` decides what is live (every recipe the index still has, and every chunk
   one of them references; chunks are shared between messages, so a chunk lives on while
   any message needs it), copies the live records of packs holding dead bytes into new
   packs, and retires the old ones. A block of small messages (:mod:`.blocks`) whose
   members are all still indexed is copied as it is; one with forgotten members is opened
   and sealed anew with only its live members (so a deleted message's bytes do not
   survive the compaction in a block either); one with no live member is dropped.

Crash safety of a compaction (the order is what matters):

* new packs are written, fsynced, and the directory fsynced, *then* the index is pointed
  at them in one SQLite commit; a crash before that commit leaves extra, unindexed
  copies in a new pack (harmless: the next writer indexes nothing new from them, since
  ``INSERT OR IGNORE`` keeps the old locations, and the next compaction drops them);
* the retired packs keep their ``packs`` row (with their committed end) until after they
  are unlinked, so a writer recovering tails never re-indexes their records (which would
  bring forgotten messages back);
* a ``packs`` row left for a pack file that is gone is dropped by the next compaction.

The store's own modules do not know about deletion; this module works through the
store's index and pack objects under the store's write lock, like ``maintenance`` does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailvault.archive.store import blocks
from mailvault.archive.store.blocks import Block
from mailvault.archive.store.errors import CorruptRecord, StoreAuthError
from mailvault.archive.store.index import IndexedRow, Location
from mailvault.archive.store.packs import fsync_dir, write_all
from mailvault.archive.store.recipe import ChunkRef, decode
from mailvault.archive.store.records import (
    HEADER_SIZE,
    KIND_BLOCK,
    KIND_CHUNK,
    KIND_RECIPE,
    PACK_HEADER_SIZE,
    TRAILER_SIZE,
    check_trailer,
    parse_header,
)

if TYPE_CHECKING:
    from mailvault.archive.store.blobstore import BlobStore

_TABLES = {KIND_CHUNK: "chunks", KIND_RECIPE: "messages"}


@dataclass
class CompactionReport:
    packs_rewritten: list[int] = field(default_factory=list)
    packs_written: list[int] = field(default_factory=list)
    chunks_dropped: int = 0
    records_copied: int = 0
    blocks_resealed: int = 0  # blocks written anew without their forgotten members
    bytes_before: int = 0
    bytes_after: int = 0
    dropped: list[bytes] = field(default_factory=list, repr=False)

    @property
    def bytes_freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)

    def summary(self) -> str:
        return (
            f"{len(self.packs_rewritten)} pack(s) rewritten into {len(self.packs_written)}, "
            f"{self.records_copied} live record(s) copied ({self.blocks_resealed} block(s) "
            f"sealed anew without their deleted messages), {self.chunks_dropped} unreferenced "
            f"chunk(s) dropped, {self.bytes_freed} bytes freed"
        )


@dataclass
class Garbage:
    """What a compaction would free (for the consistency check; changes nothing)."""

    dead_bytes: int = 0  # partly dead blocks count by their dead members' share
    unreferenced_chunks: int = 0
    partly_dead_blocks: int = 0
    stale_pack_rows: int = 0


def _digest(sha256: str) -> bytes:
    digest = bytes.fromhex(sha256)
    if len(digest) != 32:
        raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
    return digest


def stored_messages(store: BlobStore) -> set[str]:
    """The SHA-256 (hex) of every message the index still has."""
    with store._lock:
        rows = store._index._db.execute("SELECT sha FROM messages").fetchall()
    return {bytes(row[0]).hex() for row in rows}


def forget(store: BlobStore, sha256s: Iterable[str]) -> int:
    """Drop these messages from the store's index; returns how many were there.

    Their bytes are freed by the next :func:`compact`. Idempotent.
    """
    digests = [_digest(s) for s in sha256s]
    if not digests:
        return 0
    with store._lock:
        store._acquire_write()
        try:
            db = store._index._db
            removed = 0
            for digest in digests:
                removed += db.execute("DELETE FROM messages WHERE sha = ?", (digest,)).rowcount
        except BaseException:
            store._index.rollback()
            store._release_write()
            raise
        store.flush()
    return removed


def _live_chunks(store: BlobStore) -> set[bytes]:
    db = store._index._db
    live: set[bytes] = set()
    rows = db.execute(
        "SELECT sha, pack, offset, length, size, slot FROM messages ORDER BY pack, offset, slot"
    ).fetchall()
    for sha, pack, offset, length, size, slot in rows:
        recipe = store._read_recipe(Location(pack, offset, length, size, slot), bytes(sha))
        for entry in decode(recipe):
            if isinstance(entry, ChunkRef):
                live.add(entry.sha256)
    return live


def _pack_usage(store: BlobStore) -> dict[int, int]:
    """Pack id -> bytes of indexed records in it."""
    used: dict[int, int] = {}
    for query in (
        "SELECT pack, sum(length) FROM chunks GROUP BY pack",
        # The members of a block share its record: count each record once.
        "SELECT pack, sum(length) FROM "
        "(SELECT DISTINCT pack, offset, length FROM messages) GROUP BY pack",
    ):
        for pack, total in store._index._db.execute(query).fetchall():
            used[int(pack)] = used.get(int(pack), 0) + int(total)
    return used


def _partly_dead_blocks(store: BlobStore) -> dict[int, tuple[int, int]]:
    """Pack id -> (blocks with forgotten members, their dead bytes) in it.

    A block record's header counts its members; fewer index rows point at it when some
    were forgotten. Their bytes are estimated as the record's length times the dead
    members' share (the exact figure would need every block opened).
    """
    found: dict[int, tuple[int, int]] = {}
    on_disk = set(store._packs.ids())
    rows = store._index._db.execute(
        "SELECT pack, offset, length, count(*) FROM messages WHERE slot >= 0 "
        "GROUP BY pack, offset, length"
    ).fetchall()
    for pack, offset, length, live in rows:
        if pack not in on_disk:
            continue
        header = parse_header(store._packs.read(pack, offset, HEADER_SIZE))
        if header is None or header.kind != KIND_BLOCK or live >= header.blob_size:
            continue  # whole (or damaged: verify reports it, compaction refuses it)
        count, dead = found.get(pack, (0, 0))
        share = length * (header.blob_size - live) // header.blob_size
        found[pack] = (count + 1, dead + share)
    return found


def garbage(store: BlobStore) -> Garbage:
    """Measure what a compaction would free, without changing anything."""
    report = Garbage()
    with store._lock:
        live = _live_chunks(store)
        db = store._index._db
        for (sha,) in db.execute("SELECT sha FROM chunks").fetchall():
            if bytes(sha) not in live:
                report.unreferenced_chunks += 1
        committed = store._index.packs()
        used = _pack_usage(store)
        on_disk = set(store._packs.ids())
        for pack, end in committed.items():
            if pack not in on_disk:
                report.stale_pack_rows += 1
                continue
            report.dead_bytes += max(0, end - PACK_HEADER_SIZE - used.get(pack, 0))
        for count, dead in _partly_dead_blocks(store).values():
            report.partly_dead_blocks += count
            report.dead_bytes += dead
        # Chunk records no recipe needs are dead bytes too.
        for sha, length in db.execute("SELECT sha, length FROM chunks").fetchall():
            if bytes(sha) not in live:
                report.dead_bytes += int(length)
    return report


def compact(store: BlobStore, *, min_dead_fraction: float = 0.0) -> CompactionReport:
    """Rewrite every pack whose dead share exceeds ``min_dead_fraction``; see the module."""
    report = CompactionReport()
    with store._lock:
        store.flush()
        store._acquire_write()  # recovers tails: everything on disk is indexed now
        try:
            retired = _compact_locked(store, report, min_dead_fraction)
        except BaseException:
            store._index.rollback()
            store._release_write()
            raise
        # The index now points at the new packs (committed inside _compact_locked).
        _retire(store, retired, report.dropped)
        store._index.commit()
        store._block_cache.clear()
        report.bytes_after = compacted_size(store)
        if store._append_fd is not None:
            os.close(store._append_fd)
            store._append_fd = None  # the next writer reopens the last pack for appending
        store._release_write()
    return report


def _compact_locked(store: BlobStore, report: CompactionReport, threshold: float) -> list[int]:
    db = store._index._db
    packs = store._packs
    on_disk = set(packs.ids())
    committed = store._index.packs()
    for pack in [p for p in committed if p not in on_disk]:
        # A retired pack's leftovers (a crash between its unlink and the last commit):
        # only dead chunks can still point into it, live records were moved first.
        db.execute("DELETE FROM chunks WHERE pack = ?", (pack,))
        db.execute("DELETE FROM packs WHERE id = ?", (pack,))
    live = _live_chunks(store)
    dead_chunks: dict[int, list[bytes]] = {}  # pack -> unreferenced chunks in it
    dead_bytes: dict[int, int] = {}
    for sha, pack, length in db.execute("SELECT sha, pack, length FROM chunks").fetchall():
        if bytes(sha) not in live:
            dead_chunks.setdefault(int(pack), []).append(bytes(sha))
            dead_bytes[int(pack)] = dead_bytes.get(int(pack), 0) + int(length)
    used = _pack_usage(store)
    partly_dead = _partly_dead_blocks(store)
    report.bytes_before = sum(packs.size(p) for p in on_disk)
    to_rewrite = []
    for pack in sorted(on_disk):
        end = committed.get(pack, packs.size(pack))
        payload = max(0, end - PACK_HEADER_SIZE)
        dead = payload - used.get(pack, 0) + dead_bytes.get(pack, 0)
        dead += partly_dead.get(pack, (0, 0))[1]
        if dead > 0 and dead >= threshold * payload:
            to_rewrite.append(pack)
    if not to_rewrite:
        store._index.commit()
        store._index.begin()
        report.bytes_after = report.bytes_before
        return []
    next_id = max(on_disk) + 1
    fd = packs.create(next_id)
    written = [next_id]
    end = PACK_HEADER_SIZE
    try:
        for pack in to_rewrite:
            dead_here = set(dead_chunks.get(pack, ()))
            for offset, rows in sorted(store._index.records_in_pack(pack).items()):
                first = rows[0]
                if first.kind == KIND_CHUNK and first.sha256 in dead_here:
                    continue  # its index row goes once the old pack is gone (_retire)
                record = packs.read(pack, offset, first.length)
                header = parse_header(record)
                if (
                    header is None
                    or header.record_len != len(record)
                    or not check_trailer(record)
                    or (header.kind == KIND_BLOCK) != (first.slot >= 0)
                    or (header.kind != KIND_BLOCK and header.sha256 != first.sha256)
                ):
                    raise CorruptRecord(
                        f"pack {pack} offset {offset}: damaged record; run `mailvault verify` "
                        "before compacting"
                    )
                resealed = None
                if header.kind == KIND_BLOCK and len(rows) < header.blob_size:
                    record, resealed = _reseal(store, pack, offset, record, rows)
                    report.blocks_resealed += 1
                if end + len(record) > store.pack_size_limit and end > PACK_HEADER_SIZE:
                    os.fsync(fd)
                    os.close(fd)
                    store._index.set_committed_end(written[-1], end)
                    next_id += 1
                    fd = packs.create(next_id)
                    written.append(next_id)
                    end = PACK_HEADER_SIZE
                write_all(fd, record)
                for row in rows if resealed is None else ():
                    db.execute(
                        f"UPDATE {_TABLES[row.kind]} SET pack = ?, offset = ? WHERE sha = ?",  # noqa: S608
                        (written[-1], end, row.sha256),
                    )
                for _kind, sha, _size, slot in resealed or ():
                    db.execute(
                        "UPDATE messages SET pack = ?, offset = ?, length = ?, slot = ? "
                        "WHERE sha = ?",
                        (written[-1], end, len(record), slot, sha),
                    )
                end += len(record)
                report.records_copied += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(packs.directory)
    store._index.set_committed_end(written[-1], end)
    # One commit points the index at the new packs; the old packs keep their rows.
    store._index.commit()
    store._index.begin()
    report.packs_rewritten = to_rewrite
    report.packs_written = written
    report.dropped = [sha for pack in to_rewrite for sha in dead_chunks.get(pack, ())]
    report.chunks_dropped = len(report.dropped)
    return to_rewrite


def _reseal(
    store: BlobStore, pack: int, offset: int, record: bytes, rows: list[IndexedRow]
) -> tuple[bytes, list[blocks.Row]]:
    """A block sealed anew with only the members the index still has (fresh nonce)."""
    header = parse_header(record)
    assert header is not None
    try:
        block = Block(store._codec.open(header, record[HEADER_SIZE : len(record) - TRAILER_SIZE]))
    except (StoreAuthError, CorruptRecord) as exc:
        raise CorruptRecord(
            f"pack {pack} offset {offset}: {exc}; run `mailvault verify` before compacting"
        ) from exc
    members = []
    for row in rows:
        member = block.member(row.slot) if row.slot < len(block) else None
        if member is None or member.sha256 != row.sha256:
            raise CorruptRecord(
                f"pack {pack} offset {offset}: the index points at another block member; "
                "run `mailvault verify` before compacting"
            )
        members.append(member)
    return blocks.seal(store._codec, members)


def _retire(store: BlobStore, retired: list[int], dropped: list[bytes]) -> None:
    """Unlink the rewritten packs, then forget their rows and their dead chunks' rows.

    Until then the dead chunks stay indexed in the old pack, so a forgotten message's
    recipe there still rebuilds for ``verify``; a crash between the unlink and the commit
    leaves rows pointing at a missing pack, which the next compaction removes.
    """
    packs = store._packs
    if not retired:
        return
    with packs._lock:
        for pack in retired:
            fd = packs._read_fds.pop(pack, None)
            if fd is not None:
                os.close(fd)
    for pack in retired:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(packs.path(pack))
    fsync_dir(packs.directory)
    for sha in dropped:
        store._index._db.execute("DELETE FROM chunks WHERE sha = ?", (sha,))
    for pack in retired:
        store._index._db.execute("DELETE FROM packs WHERE id = ?", (pack,))


def compacted_size(store: BlobStore) -> int:
    return sum(store._packs.size(p) for p in store._packs.ids())
