"""Whole-store checks and repairs: ``verify`` and ``rebuild_index_from_packs``.

Both walk the pack files themselves, not the index, so they find what the index would
hide: damaged bytes, records the index lost, index entries pointing at nothing. A block
record is opened to reach its members: damage to a block is reported once for every
message indexed in it, each named with the block's pack and offset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailvault.archive.store import blocks
from mailvault.archive.store.blocks import Block
from mailvault.archive.store.errors import CorruptRecord, StoreAuthError, StoreError, WrongKeyError
from mailvault.archive.store.index import IndexedRow, Location
from mailvault.archive.store.reader import BlobReader
from mailvault.archive.store.records import (
    KIND_BLOCK,
    KIND_CHUNK,
    KIND_NAMES,
    KIND_RECIPE,
    PACK_HEADER_SIZE,
    DamagedRegion,
    ScannedRecord,
    parse_pack_header,
    scan,
)

if TYPE_CHECKING:
    from mailvault.archive.store.blobstore import BlobStore


@dataclass(frozen=True)
class Mismatch:
    pack: int
    offset: int
    sha256: str | None
    kind: str  # "chunk", "message", or "bytes" for damage no record could be named for
    problem: str

    def __str__(self) -> str:
        name = f"{self.kind} {self.sha256}" if self.sha256 else self.kind
        return f"pack {self.pack} offset {self.offset}: {name}: {self.problem}"


@dataclass
class VerifyReport:
    packs: int = 0
    records: int = 0
    blocks: int = 0  # block records among them
    chunks: int = 0
    messages: int = 0
    bytes_read: int = 0
    unindexed_records: int = 0  # whole records no index entry points at (e.g. duplicates)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> list[str]:
        lines = [
            f"packs: {self.packs}",
            f"records: {self.records} ({self.blocks} blocks of messages, "
            f"{self.bytes_read} bytes read)",
            f"chunks verified: {self.chunks}",
            f"messages rebuilt and verified: {self.messages}",
            f"records not referenced by the index: {self.unindexed_records}",
            f"mismatches: {len(self.mismatches)}",
        ]
        lines += [f"  {mismatch}" for mismatch in self.mismatches]
        return lines


@dataclass
class RebuildReport:
    packs: int = 0
    chunks: int = 0
    messages: int = 0
    damaged: list[Mismatch] = field(default_factory=list)


def _sha(value: bytes | None) -> str | None:
    return value.hex() if value else None


def verify(store: BlobStore) -> VerifyReport:
    """Everything the index has committed, re-read from the packs and re-hashed.

    Runs beside a writer: it reads each pack only up to the end the index committed.
    """
    report = VerifyReport()
    with store._lock:
        committed = store._index.packs()
    on_disk = set(store._packs.ids())
    for pack in sorted(committed):
        with store._lock:
            # Only what was committed when the walk began; a writer may be appending.
            indexed = {
                offset: rows
                for offset, rows in store._index.records_in_pack(pack).items()
                if offset < committed[pack]
            }
        report.packs += 1
        if pack not in on_disk:
            for offset, rows in sorted(indexed.items()):
                for row in rows:
                    report.mismatches.append(
                        Mismatch(
                            pack,
                            offset,
                            row.sha256.hex(),
                            KIND_NAMES[row.kind],
                            "pack file is missing",
                        )
                    )
            continue
        _verify_pack(store, pack, committed[pack], indexed, report)
    return report


def _verify_pack(
    store: BlobStore,
    pack: int,
    end: int,
    indexed: dict[int, list[IndexedRow]],
    report: VerifyReport,
) -> None:
    def named(offset: int, kind: int, sha: bytes, problem: str) -> None:
        report.mismatches.append(Mismatch(pack, offset, sha.hex(), KIND_NAMES[kind], problem))

    def all_named(offset: int, rows: list[IndexedRow], problem: str) -> None:
        if len(rows) > 1:
            problem = f"{problem} (a block of messages: {len(rows)} indexed in it)"
        for row in rows:
            named(offset, row.kind, row.sha256, problem)

    with open(store._packs.path(pack), "rb") as handle:
        if parse_pack_header(handle.read(PACK_HEADER_SIZE)) != pack:
            report.mismatches.append(
                Mismatch(pack, 0, None, "bytes", "pack file header is damaged")
            )
        for item in scan(handle, PACK_HEADER_SIZE, end, resync=True):
            if isinstance(item, DamagedRegion):
                inside = [o for o in indexed if item.offset <= o < item.offset + item.length]
                for offset in sorted(inside):
                    all_named(offset, indexed.pop(offset), "record damaged (checksum or framing)")
                if not inside:
                    header = item.header
                    report.mismatches.append(
                        Mismatch(
                            pack,
                            item.offset,
                            _sha(header.sha256) if header else None,
                            KIND_NAMES[header.kind] if header else "bytes",
                            f"{item.length} damaged bytes",
                        )
                    )
                continue
            header = item.header
            report.records += 1
            report.bytes_read += header.record_len
            expected = indexed.pop(item.offset, None)
            if expected is None:
                report.unindexed_records += 1
            if header.kind == KIND_BLOCK:
                _verify_block(store, pack, item, expected or [], report, all_named)
                continue
            if expected is not None and [(r.kind, r.sha256, r.slot) for r in expected] != [
                (header.kind, header.sha256, -1)
            ]:
                all_named(item.offset, expected, "the index points at another record")
                continue
            try:
                plain = store._codec.open(header, item.body)
            except (StoreAuthError, CorruptRecord) as exc:
                named(item.offset, header.kind, header.sha256, str(exc))
                continue
            if header.kind == KIND_CHUNK:
                if (
                    hashlib.sha256(plain).digest() != header.sha256
                    or len(plain) != header.blob_size
                ):
                    named(item.offset, KIND_CHUNK, header.sha256, "does not hash to its SHA-256")
                else:
                    report.chunks += 1
            elif _rebuild_message(
                store, header.sha256, header.blob_size, plain, item.offset, pack, report
            ):
                report.messages += 1
    for offset, rows in sorted(indexed.items()):
        all_named(offset, rows, "the index points at no whole record")


def _verify_block(
    store: BlobStore,
    pack: int,
    item: ScannedRecord,
    rows: list[IndexedRow],
    report: VerifyReport,
    all_named: Callable[[int, list[IndexedRow], str], None],
) -> None:
    """Open and re-hash a block, then rebuild every message the index has in it."""
    header = item.header
    try:
        plain = store._codec.open(header, item.body)
        block = Block(plain)
        blocks.rows_of(header, plain)  # the directory holds and the block hashes right
    except (StoreAuthError, CorruptRecord) as exc:
        if rows:
            all_named(item.offset, rows, str(exc))
        else:
            report.mismatches.append(
                Mismatch(pack, item.offset, header.sha256.hex(), "block", str(exc))
            )
        return
    report.blocks += 1
    for row in rows:
        member = block.member(row.slot) if 0 <= row.slot < len(block) else None
        if member is None or (member.kind, member.sha256) != (row.kind, row.sha256):
            all_named(item.offset, [row], "the index points at another record")
        elif _rebuild_message(
            store, member.sha256, member.size, member.plain, item.offset, pack, report
        ):
            report.messages += 1


def _rebuild_message(
    store: BlobStore,
    sha256: bytes,
    size: int,
    recipe: bytes,
    offset: int,
    pack: int,
    report: VerifyReport,
) -> bool:
    reader = BlobReader(sha256, size, recipe, store._read_chunk)
    try:
        for _piece in reader.iter_pieces():
            pass
    except StoreError as exc:
        report.mismatches.append(
            Mismatch(pack, offset, sha256.hex(), "message", f"rebuild failed: {exc}")
        )
        return False
    return True


def rebuild_index_from_packs(store: BlobStore, *, authenticate: bool = True) -> RebuildReport:
    """Forget the index and regenerate it by scanning every pack.

    Damaged regions are skipped and reported, never cut out (only a later writer cuts a
    torn tail after the last whole record of a pack). With ``authenticate`` every record
    is decrypted first, so only records this key wrote are indexed.
    """
    report = RebuildReport()
    with store._lock:
        store.flush()
        store._acquire_write(recover=False)
        try:
            store._index.clear()
            store._block_cache.clear()
            authenticated = failed = 0
            for pack in store._packs.ids():
                report.packs += 1
                last_end = PACK_HEADER_SIZE
                path = store._packs.path(pack)
                with open(path, "rb") as handle:
                    size = path.stat().st_size
                    for item in scan(handle, PACK_HEADER_SIZE, size, resync=True):
                        if isinstance(item, DamagedRegion):
                            report.damaged.append(
                                Mismatch(
                                    pack,
                                    item.offset,
                                    None,
                                    "bytes",
                                    f"{item.length} damaged bytes skipped",
                                )
                            )
                            continue
                        header = item.header
                        rows = blocks.rows_of(header, None) if header.kind != KIND_BLOCK else []
                        if authenticate or header.kind == KIND_BLOCK:
                            # A block is opened in any case: its directory names its members.
                            try:
                                plain = store._codec.open(header, item.body)
                                rows = blocks.rows_of(header, plain)
                            except (StoreAuthError, CorruptRecord) as exc:
                                failed += 1
                                report.damaged.append(
                                    Mismatch(
                                        pack,
                                        item.offset,
                                        header.sha256.hex(),
                                        KIND_NAMES[header.kind],
                                        str(exc),
                                    )
                                )
                                continue
                            authenticated += 1
                        for kind, sha, blob_size, slot in rows:
                            location = Location(
                                pack, item.offset, header.record_len, blob_size, slot
                            )
                            store._index.add(kind, sha, location)
                            if kind == KIND_RECIPE:
                                report.messages += 1
                            else:
                                report.chunks += 1
                        last_end = item.offset + header.record_len
                store._dirty[pack] = last_end
            if failed and not authenticated:
                raise WrongKeyError(
                    f"no record of the store at {store.root} authenticates with this data key"
                )
            store._index.set_meta("format", b"2")
            store._index.set_meta("key_check", store._key_check)
        except BaseException:
            store._index.rollback()
            store._release_write()
            raise
        store.flush()
    return report


def message_shas_in_packs(store: BlobStore) -> Iterator[tuple[int, list[str]]]:
    """(pack id, SHA-256 of every whole message record in it), pack by pack, from the pack
    files themselves (not the index): a message of its own is named by its record header,
    the members of a block by the block's directory (the block is decrypted for it; a block
    that does not open is skipped, ``verify`` reports it)."""
    packs = store._packs
    for pack in packs.ids():
        path = packs.path(pack)
        shas: list[str] = []
        with open(path, "rb") as handle:
            for item in scan(handle, PACK_HEADER_SIZE, path.stat().st_size, resync=True):
                if not isinstance(item, ScannedRecord):
                    continue
                if item.header.kind == KIND_RECIPE:
                    shas.append(item.header.sha256.hex())
                elif item.header.kind == KIND_BLOCK:
                    try:
                        plain = store._codec.open(item.header, item.body)
                        rows = blocks.rows_of(item.header, plain)
                    except (StoreAuthError, CorruptRecord):
                        continue
                    shas += [sha.hex() for kind, sha, _, _ in rows if kind == KIND_RECIPE]
        yield pack, shas
