"""Reading records back: a record of its own, a message inside a block, a chunk.

A mixin of :class:`~mailvault.archive.store.blobstore.BlobStore` (kept apart to keep
that module short); maintenance and compaction read through these methods too.
"""

from __future__ import annotations

import hashlib
import threading

from mailvault.archive.store import blocks
from mailvault.archive.store.blocks import Block, BlockCache
from mailvault.archive.store.codec import RecordCodec
from mailvault.archive.store.errors import (
    BlobNotFound,
    CorruptRecord,
    IntegrityError,
    StoreAuthError,
)
from mailvault.archive.store.index import Index, Location
from mailvault.archive.store.packs import PackFiles
from mailvault.archive.store.recipe import ChunkRef
from mailvault.archive.store.records import (
    HEADER_SIZE,
    KIND_BLOCK,
    KIND_CHUNK,
    KIND_NAMES,
    KIND_RECIPE,
    TRAILER_SIZE,
    RecordHeader,
    parse_header,
)


class RecordReads:
    _packs: PackFiles
    _codec: RecordCodec
    _index: Index
    _lock: threading.RLock
    _block_cache: BlockCache

    def _rows_of(self, pack: int, offset: int, header: RecordHeader) -> list[blocks.Row]:
        """The index rows of a whole record found in a pack tail (a block is opened)."""
        if header.kind != KIND_BLOCK:
            return blocks.rows_of(header, None)
        data = self._packs.read(pack, offset, header.record_len)
        try:
            plain = self._codec.open(header, data[HEADER_SIZE : len(data) - TRAILER_SIZE])
            return blocks.rows_of(header, plain)
        except (StoreAuthError, CorruptRecord):
            return []  # not ours, or damaged: nothing in it can be read, index nothing

    def _read_recipe(self, location: Location, digest: bytes) -> bytes:
        """A message's recipe, from its own record or from its block (cached)."""
        if location.slot < 0:
            return self._read_record(location, KIND_RECIPE, digest)
        where = (
            f"message {digest.hex()} (pack {location.pack}, offset {location.offset}, "
            f"block slot {location.slot})"
        )
        key = (location.pack, location.offset, location.length)
        block = self._block_cache.get(key)
        if block is None:
            plain = self._read_record(location, KIND_BLOCK, None, where=where)
            try:
                block = Block(plain)
            except CorruptRecord as exc:
                raise CorruptRecord(f"{where}: {exc}") from exc
            self._block_cache.put(key, block)
        if location.slot >= len(block):
            raise CorruptRecord(f"{where}: the block has no such slot")
        member = block.member(location.slot)
        if member.kind != KIND_RECIPE or member.sha256 != digest:
            raise CorruptRecord(f"{where}: the block holds another blob in this slot")
        return member.plain

    def _read_record(
        self, location: Location, kind: int, digest: bytes | None, *, where: str = ""
    ) -> bytes:
        if not where:
            name = digest.hex() if digest is not None else ""
            where = f"{KIND_NAMES[kind]} {name} (pack {location.pack}, offset {location.offset})"
        data = self._packs.read(location.pack, location.offset, location.length)
        header = parse_header(data)
        if (
            header is None
            or header.record_len != len(data)
            or header.kind != kind
            or (digest is not None and header.sha256 != digest)
        ):
            raise CorruptRecord(f"{where}: the record's framing is damaged")
        try:
            return self._codec.open(header, data[HEADER_SIZE : len(data) - TRAILER_SIZE])
        except (StoreAuthError, CorruptRecord) as exc:
            raise type(exc)(f"{where}: {exc}") from exc

    def _read_chunk(self, ref: ChunkRef) -> bytes:
        with self._lock:
            location = self._index.lookup(KIND_CHUNK, ref.sha256)
        if location is None:
            raise BlobNotFound(f"chunk {ref.sha256.hex()} is missing from the index")
        plain = self._read_record(location, KIND_CHUNK, ref.sha256)
        if len(plain) != ref.size or hashlib.sha256(plain).digest() != ref.sha256:
            raise IntegrityError(
                f"chunk {ref.sha256.hex()} (pack {location.pack}, offset {location.offset}) "
                "does not hash to its SHA-256"
            )
        return plain
