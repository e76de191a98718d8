"""Blocks: many small messages compressed and encrypted together as one record.

Each record is its own zstd frame, and a frame starts without context: a small
plain-text message compresses to about half its size on its own, to about a quarter
among its neighbours (bench/pack_compression.py). So the recipes of small messages
(which hold their bytes inline) are gathered into blocks of consecutive messages, and a
block is sealed as one ``KIND_BLOCK`` record. Base64 chunks stay records of their own:
they are single-instance per attachment and compress poorly anyway.

Block plaintext (before compression and encryption)::

    "B1" | member count u32 | directory | the members' plaintexts, concatenated
    directory entry: kind u8 | sha256 32s | blob size u64 | offset u32 | length u32

Offsets count from the start of the concatenated plaintexts. The record header of a block
carries the SHA-256 of the whole block plaintext and, as its blob size, the member count.
The index points each member message at (pack, offset, length) of its block and its
``slot``, the member's place in the directory.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

from mailvault.archive.store.codec import RecordCodec
from mailvault.archive.store.errors import CorruptRecord
from mailvault.archive.store.records import KIND_BLOCK, RecordHeader

MAGIC = b"B1"
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">B32sQII")

# Recipes below this size go into blocks (a small message's recipe is about its size).
MEMBER_MAX = 64 * 1024
# A block is sealed once its members' plaintexts reach this size. Measured on the first
# 40 R-help months (bench/pack_compression.py --store; 6,635 messages, 12.9 MB): the packs
# take 0.559 of the raw size without blocks, 0.291 with 64 KiB blocks, 0.261 with 256 KiB
# and 0.242 with 1 MiB; reading one message whose block is not cached takes 0.02 ms
# without blocks, 0.08, 0.23 and 0.75 ms with them (in file order, cached: 14 us in all).
# 256 KiB: most of the gain, a read still well under a millisecond, 2 MiB of cache.
TARGET = 256 * 1024
CACHED_BLOCKS = 8


@dataclass(frozen=True)
class Member:
    kind: int
    sha256: bytes
    size: int  # the member blob's own size (the whole message)
    plain: bytes


class Block:
    """A decoded block: its directory, with members cut out of the plaintext on demand."""

    def __init__(self, plain: bytes) -> None:
        if plain[:2] != MAGIC or len(plain) < 6:
            raise CorruptRecord("not a block of messages")
        (count,) = _COUNT.unpack_from(plain, 2)
        start = 6 + count * _ENTRY.size
        if start > len(plain):
            raise CorruptRecord("the block's directory is truncated")
        self.entries = [_ENTRY.unpack_from(plain, 6 + i * _ENTRY.size) for i in range(count)]
        self._payload = memoryview(plain)[start:]
        for _kind, _sha, _size, offset, length in self.entries:
            if offset + length > len(self._payload):
                raise CorruptRecord("a block member runs past the block's end")

    def __len__(self) -> int:
        return len(self.entries)

    def member(self, slot: int) -> Member:
        kind, sha, size, offset, length = self.entries[slot]
        return Member(kind, sha, size, bytes(self._payload[offset : offset + length]))

    def members(self) -> list[Member]:
        return [self.member(slot) for slot in range(len(self.entries))]


def encode(members: list[Member]) -> bytes:
    directory = [MAGIC, _COUNT.pack(len(members))]
    offset = 0
    for member in members:
        directory.append(
            _ENTRY.pack(member.kind, member.sha256, member.size, offset, len(member.plain))
        )
        offset += len(member.plain)
    return b"".join(directory + [member.plain for member in members])


def digest(plain: bytes) -> bytes:
    return hashlib.sha256(plain).digest()


class PendingBlock:
    """The writer's open block: members put but not yet sealed and appended.

    Guarded by the store's lock. Members are readable from here (read-your-writes) and
    count as stored for deduplication until the block is written.
    """

    def __init__(self) -> None:
        self.members: dict[bytes, Member] = {}
        self.plain_bytes = 0

    def add(self, member: Member) -> None:
        self.members[member.sha256] = member
        self.plain_bytes += len(member.plain)

    def get(self, sha256: bytes) -> Member | None:
        return self.members.get(sha256)

    def take(self) -> list[Member]:
        members = list(self.members.values())
        self.members = {}
        self.plain_bytes = 0
        return members

    def __len__(self) -> int:
        return len(self.members)


class BlockCache:
    """The last few decoded blocks, so reading consecutive messages (export, reindex,
    verify) opens each block once. Thread-safe."""

    def __init__(self, size: int = CACHED_BLOCKS) -> None:
        self._size = size
        self._blocks: OrderedDict[tuple[int, int, int], Block] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> Block | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key: tuple[int, int, int], block: Block) -> None:
        with self._lock:
            self._blocks[key] = block
            self._blocks.move_to_end(key)
            while len(self._blocks) > self._size:
                self._blocks.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()


Row = tuple[int, bytes, int, int]  # kind, sha256, blob size, slot (-1: a record of its own)


def seal(codec: RecordCodec, members: list[Member]) -> tuple[bytes, list[Row]]:
    """The record holding ``members`` and the index rows it gives. A lone member (the
    block of a durable put, say) is sealed as a record of its own: same bytes, less
    framing."""
    if len(members) == 1:
        (member,) = members
        record = codec.seal(member.kind, member.sha256, member.size, member.plain)
        return record, [(member.kind, member.sha256, member.size, -1)]
    plain = encode(members)
    record = codec.seal(KIND_BLOCK, digest(plain), len(members), plain)
    return record, [(m.kind, m.sha256, m.size, slot) for slot, m in enumerate(members)]


def rows_of(header: RecordHeader, plain: bytes | None) -> list[Row]:
    """The index rows a whole record gives (a block's need its opened plaintext)."""
    if header.kind != KIND_BLOCK:
        return [(header.kind, header.sha256, header.blob_size, -1)]
    if plain is None:
        raise ValueError("a block's members are only known once it is opened")
    block = Block(plain)
    if len(block) != header.blob_size or digest(plain) != header.sha256:
        raise CorruptRecord("the block does not hash to its SHA-256")
    return [(kind, sha, size, slot) for slot, (kind, sha, size, _, _) in enumerate(block.entries)]
