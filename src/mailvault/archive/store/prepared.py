"""Messages made ready to append, outside the store's write lock (import workers).

:meth:`BlobStore.prepare` hashes and splits one message and seals its chunks.
:meth:`BlobStore.prepare_many` goes further for a run of messages: it also seals the
small messages' recipes together into blocks (:mod:`.blocks`): zstd and AES-GCM over every
small message, about a third of what the store cost the importing process. The writer
then appends a block as it is when every member is new to the store, which on a first
import is nearly always; when some member turns out to be stored already, it falls back
to putting the new members one by one into its own open block (their recipe plaintexts
travel with them for that), so nothing is ever stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailvault.archive.store import blocks
from mailvault.archive.store.codec import RecordCodec
from mailvault.archive.store.records import KIND_RECIPE, RECORD_MAGIC


@dataclass(frozen=True)
class SealedBlock:
    """A block record sealed ahead of time, and the messages it holds in slot order:
    (sha256, blob size) each."""

    record: bytes
    members: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True)
class PreparedBlob:
    """A message made ready to append (see :meth:`BlobStore.prepare`): its chunks sealed,
    and its recipe either sealed as a record of its own (a big recipe) or, for a message
    that goes into a block, as plaintext; the block is sealed by the writer, or ahead of
    time by :func:`seal_blocks` (``block``)."""

    sha256: bytes
    size: int
    chunks: tuple[tuple[bytes, int, bytes], ...]  # (sha256, size, sealed record)
    recipe: bytes  # a sealed record (starts "MVR1") or recipe plaintext (starts "R1")
    block: SealedBlock | None = None

    @property
    def sealed(self) -> bool:
        return self.recipe[:4] == RECORD_MAGIC


def seal_blocks(
    codec: RecordCodec, prepared: list[PreparedBlob], target: int
) -> list[PreparedBlob]:
    """``prepared`` with the small messages' recipes sealed together in blocks of about
    ``target`` bytes, in order (a message seen twice goes into the first block only)."""
    out = list(prepared)
    run: list[int] = []  # positions in ``out`` of the members of the open block
    members: dict[bytes, blocks.Member] = {}
    plain_bytes = 0
    seen: set[bytes] = set()

    def close() -> None:
        nonlocal plain_bytes
        if len(members) > 1:  # a lone member is better left to the writer's own block
            record, _ = blocks.seal(codec, list(members.values()))
            block = SealedBlock(record, tuple((m.sha256, m.size) for m in members.values()))
            for i in run:
                blob = out[i]
                out[i] = PreparedBlob(blob.sha256, blob.size, blob.chunks, blob.recipe, block)
        run.clear()
        members.clear()
        plain_bytes = 0

    for i, blob in enumerate(prepared):
        if blob.sealed or blob.sha256 in seen:
            continue
        seen.add(blob.sha256)
        members[blob.sha256] = blocks.Member(KIND_RECIPE, blob.sha256, blob.size, blob.recipe)
        run.append(i)
        plain_bytes += len(blob.recipe)
        if plain_bytes >= target:
            close()
    close()
    return out
