"""Streaming reads: a message rebuilt segment by segment, hashed as it goes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator

from mailvault.archive.store import recipe as recipes
from mailvault.archive.store.errors import IntegrityError


class BlobReader(io.RawIOBase):
    """A read-only file object over one stored message.

    Memory stays at about one chunk (at most 1 MiB) plus the recipe, whatever the message
    size. The bytes are hashed while they are read; reaching the end raises
    :class:`IntegrityError` if they are not the message that was stored.
    """

    def __init__(
        self,
        sha256: bytes,
        size: int,
        recipe: bytes,
        read_chunk: Callable[[recipes.ChunkRef], bytes],
    ) -> None:
        super().__init__()
        self.sha256 = sha256.hex()
        self.size = size
        self._expected = sha256
        self._pieces = self._verified(recipe, read_chunk)
        self._current = memoryview(b"")

    def _verified(
        self, recipe: bytes, read_chunk: Callable[[recipes.ChunkRef], bytes]
    ) -> Iterator[bytes]:
        hasher = hashlib.sha256()
        total = 0
        for entry in recipes.decode(recipe):
            piece = entry if isinstance(entry, bytes) else read_chunk(entry)
            hasher.update(piece)
            total += len(piece)
            yield piece
        if total != self.size or hasher.digest() != self._expected:
            raise IntegrityError(
                f"message {self.sha256} rebuilt to {total} bytes that do not hash to its SHA-256"
            )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._current = memoryview(piece)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def readall(self) -> bytes:
        parts = [bytes(self._current)]
        self._current = memoryview(b"")
        parts.extend(self._pieces)
        return b"".join(parts)

    def iter_pieces(self) -> Iterator[bytes]:
        """The remaining bytes as pieces of up to a chunk each (for streaming responses)."""
        if self._current:
            yield bytes(self._current)
            self._current = memoryview(b"")
        yield from self._pieces
