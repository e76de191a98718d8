"""A message's recipe: the ordered segments that rebuild its exact bytes.

Binary layout (before compression and encryption)::

    "R1" then entries:  0x00 | length u32 | literal bytes
                        0x01 | chunk sha256 32s | chunk length u32

Chunks are named by content, not by location, so a compaction may move them freely.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from mailvault.archive.store.errors import CorruptRecord

_MAGIC = b"R1"
_LITERAL = 0
_CHUNK = 1
_LEN = struct.Struct(">I")
_REF = struct.Struct(">32sI")


@dataclass(frozen=True)
class ChunkRef:
    sha256: bytes
    size: int


Entry = bytes | ChunkRef


class RecipeBuilder:
    def __init__(self) -> None:
        self._parts: list[bytes] = [_MAGIC]

    def literal(self, data: bytes) -> None:
        if data:
            self._parts += (b"\x00", _LEN.pack(len(data)), data)

    def chunk(self, sha256: bytes, size: int) -> None:
        self._parts += (b"\x01", _REF.pack(sha256, size))

    def encode(self) -> bytes:
        return b"".join(self._parts)


def decode(recipe: bytes) -> Iterator[Entry]:
    """The entries in order: literal bytes or chunk references."""
    if recipe[:2] != _MAGIC:
        raise CorruptRecord("not a message recipe")
    view = memoryview(recipe)
    pos, end = 2, len(recipe)
    while pos < end:
        tag = recipe[pos]
        pos += 1
        if tag == _LITERAL and pos + 4 <= end:
            (length,) = _LEN.unpack_from(recipe, pos)
            pos += 4
            if pos + length > end:
                break
            yield bytes(view[pos : pos + length])
            pos += length
        elif tag == _CHUNK and pos + _REF.size <= end:
            sha, size = _REF.unpack_from(recipe, pos)
            pos += _REF.size
            yield ChunkRef(sha, size)
        else:
            break
    else:
        return
    raise CorruptRecord("message recipe is truncated or malformed")
