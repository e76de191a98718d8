"""On-disk framing of pack files and records (no cryptography here).

A pack file is a 16-byte file header followed by records, appended and never rewritten::

    pack header : magic "MVPACK" 00 01 | pack id u32 | 4 reserved bytes
    record      : header (72 bytes) | body (body_len bytes) | crc32 u32

    header      : magic "MVR1" | kind u8 | flags u8 | key id u16 | sha256 32s
                  | blob size u64 | plain length u32 | body length u32 | nonce 12s
                  | crc32 of the 68 bytes before it

The header (without its CRC) is the AES-GCM associated data, so a record moved under
another SHA-256, kind or size fails authentication. The CRCs let framing be checked
without the key: a torn tail (a record cut short by a crash) is told apart from the last
good record, and a scan can resynchronise after a damaged region by looking for the next
header whose CRC holds. Records are self-describing (kind, SHA-256, sizes), so a later
compaction can copy live records into new packs and point the index at them.

Record kinds: a *chunk* (1) is a piece of a message stored once by content (a base64
attachment body, a long literal), its SHA-256 and size those of the piece; a *message*
(2) is one message's recipe (:mod:`.recipe`), under the message's SHA-256 and size; a
*block* (3) holds the recipes of many small messages (:mod:`.blocks`), under the SHA-256
of the block plaintext, with the member count as its blob size.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

PACK_MAGIC = b"MVPACK\x00\x01"
PACK_HEADER = struct.Struct(">8sI4x")
PACK_HEADER_SIZE = PACK_HEADER.size  # 16

RECORD_MAGIC = b"MVR1"
_HEADER = struct.Struct(">4sBBH32sQII12s")
_HEADER_CRC = struct.Struct(">I")
AAD_SIZE = _HEADER.size  # 68
HEADER_SIZE = AAD_SIZE + 4  # 72
TRAILER_SIZE = 4
MAX_BODY = 64 * 1024 * 1024

KIND_CHUNK = 1
KIND_RECIPE = 2
KIND_BLOCK = 3
KIND_NAMES = {KIND_CHUNK: "chunk", KIND_RECIPE: "message", KIND_BLOCK: "block"}
FLAG_ZSTD = 0x01


@dataclass(frozen=True)
class RecordHeader:
    kind: int
    flags: int
    key_id: int
    sha256: bytes
    blob_size: int
    plain_len: int
    body_len: int
    nonce: bytes
    aad: bytes

    @property
    def record_len(self) -> int:
        return HEADER_SIZE + self.body_len + TRAILER_SIZE


def pack_header(pack_id: int) -> bytes:
    return PACK_HEADER.pack(PACK_MAGIC, pack_id)


def parse_pack_header(data: bytes) -> int | None:
    """The pack id, or None when the file header is missing or damaged."""
    if len(data) < PACK_HEADER_SIZE:
        return None
    magic, pack_id = PACK_HEADER.unpack_from(data)
    return int(pack_id) if magic == PACK_MAGIC else None


def build_header(
    *,
    kind: int,
    flags: int,
    key_id: int,
    sha256: bytes,
    blob_size: int,
    plain_len: int,
    body_len: int,
    nonce: bytes,
) -> bytes:
    aad = _HEADER.pack(
        RECORD_MAGIC, kind, flags, key_id, sha256, blob_size, plain_len, body_len, nonce
    )
    return aad + _HEADER_CRC.pack(zlib.crc32(aad))


def frame(header: bytes, body: bytes) -> bytes:
    """The complete record: header, body, and the CRC over both."""
    crc = zlib.crc32(body, zlib.crc32(header))
    return b"".join((header, body, _HEADER_CRC.pack(crc)))


def parse_header(data: bytes | memoryview) -> RecordHeader | None:
    """The header at the start of ``data``, or None when its framing does not hold."""
    if len(data) < HEADER_SIZE:
        return None
    aad = bytes(data[:AAD_SIZE])
    if aad[:4] != RECORD_MAGIC:
        return None
    (crc,) = _HEADER_CRC.unpack_from(data, AAD_SIZE)
    if crc != zlib.crc32(aad):
        return None
    _, kind, flags, key_id, sha, blob_size, plain_len, body_len, nonce = _HEADER.unpack(aad)
    if kind not in KIND_NAMES or body_len > MAX_BODY:
        return None
    return RecordHeader(kind, flags, key_id, sha, blob_size, plain_len, body_len, nonce, aad)


def check_trailer(record: bytes | memoryview) -> bool:
    """Whether a complete record's trailing CRC matches its header and body."""
    body_end = len(record) - TRAILER_SIZE
    (crc,) = _HEADER_CRC.unpack_from(record, body_end)
    return crc == zlib.crc32(memoryview(record)[:body_end])


@dataclass(frozen=True)
class ScannedRecord:
    offset: int
    header: RecordHeader
    body: bytes


@dataclass(frozen=True)
class DamagedRegion:
    offset: int
    length: int
    header: RecordHeader | None  # set when the header held but the body did not


def scan(
    handle: BinaryIO, start: int, end: int, *, resync: bool
) -> Iterator[ScannedRecord | DamagedRegion]:
    """Records between ``start`` and ``end`` in file order.

    Without ``resync`` the scan stops at the first damaged record (yielding it as a
    DamagedRegion running to ``end``): that is how a torn tail is found. With ``resync``
    it skips damage and continues at the next header whose CRC holds, as verify and
    index rebuilds do.
    """
    offset = start
    while offset < end:
        handle.seek(offset)
        head = handle.read(HEADER_SIZE)
        header = parse_header(head)
        if header is not None and offset + header.record_len <= end:
            rest = handle.read(header.body_len + TRAILER_SIZE)
            record = head + rest
            if len(record) == header.record_len and check_trailer(record):
                yield ScannedRecord(offset, header, record[HEADER_SIZE:-TRAILER_SIZE])
                offset += header.record_len
                continue
        if not resync:
            yield DamagedRegion(offset, end - offset, header)
            return
        following = _next_header(handle, offset + 1, end)
        if header is not None and following > offset + header.record_len:
            following = offset + header.record_len  # the header held: skip just its record
        yield DamagedRegion(offset, following - offset, header)
        offset = following


def _next_header(handle: BinaryIO, start: int, end: int) -> int:
    """Offset of the next plausible record header at or after ``start`` (or ``end``)."""
    window = 1024 * 1024
    position = start
    while position < end:
        handle.seek(position)
        data = handle.read(min(window + HEADER_SIZE, end - position))
        search_from = 0
        while True:
            found = data.find(RECORD_MAGIC, search_from)
            if found < 0 or found > window:
                break
            if parse_header(data[found : found + HEADER_SIZE]) is not None:
                return position + found
            search_from = found + 1
        if len(data) <= window:
            break
        position += window + 1
    return end
