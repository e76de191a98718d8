"""The byte-exact, deduplicating, encrypted blob store of one tenant.

Layout under ``root``: ``packs/NNNNNNNN.pack`` (append-only record logs, rolled at
``pack_size_limit``), ``index.sqlite3`` (see :mod:`.index`) and ``write.lock``.

Durability contract:

* ``put(raw)`` (``durable=True``, the default) returns once the records are fsynced
  and the index has committed them.
* Inside ``with store.batch():`` (or ``put_many``) and with ``put(raw, durable=False)``
  the data is readable through this store object at once, and made durable by one fsync
  and one index commit when the batch ends, at ``flush()``/``close()``, or automatically
  every ``autoflush_records`` records or ``autoflush_bytes`` bytes. A crash before that
  loses at most those puts; records that did reach the disk whole are re-indexed by the
  next writer, a torn one is cut off.

Small messages (a recipe under ``blocks.MEMBER_MAX``) are not written one by one: they
gather in an open block in memory (readable from there, and deduplicated against), which
is sealed and appended as one record once it holds ``block_target`` bytes, and always
before a flush; a durable put therefore returns once its block is on disk and committed.
Their base64 chunks are records of their own, written as they come.

Concurrency: one writer per tenant store at a time, enforced with ``flock`` on
``write.lock`` from a writer's first write until its flush; any number of readers (in
this or other processes) read what the index has committed. A store object may be
shared by threads. Keep batches short: other writers wait (``lock_timeout``, then
:class:`StoreLocked`) until the holder flushes. Do not fork with a store holding the
lock (the child would inherit it); open stores after forking.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailvault.archive.store import blocks, chunking
from mailvault.archive.store.blocks import BlockCache, Member, PendingBlock
from mailvault.archive.store.codec import RecordCodec, key_check
from mailvault.archive.store.errors import (
    BlobNotFound,
    CorruptRecord,
    StoreError,
    StoreLocked,
    WrongKeyError,
)
from mailvault.archive.store.index import Index, Location
from mailvault.archive.store.maintenance import (
    RebuildReport,
    VerifyReport,
    rebuild_index_from_packs,
    verify,
)
from mailvault.archive.store.packs import PackFiles, fsync_dir, write_all
from mailvault.archive.store.prepared import PreparedBlob, SealedBlock, seal_blocks
from mailvault.archive.store.reader import BlobReader
from mailvault.archive.store.reads import RecordReads
from mailvault.archive.store.recipe import RecipeBuilder
from mailvault.archive.store.records import (
    KIND_CHUNK,
    KIND_RECIPE,
    PACK_HEADER_SIZE,
)

READ_BLOCK = 1024 * 1024
STREAM_ABOVE = 8 * 1024 * 1024  # bigger messages given as bytes are still split as streams
_FORMAT = b"2"  # 2: block records


@dataclass(frozen=True)
class BlobRef:
    """A stored message: its SHA-256 (hex) and size. ``created`` is False when the bytes
    were already stored (single instance); it does not take part in equality."""

    sha256: str
    size: int
    created: bool = field(default=True, compare=False)


def _digest(sha256: str) -> bytes:
    try:
        digest = bytes.fromhex(sha256)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
    return digest


class BlobStore(RecordReads):
    def __init__(
        self,
        root: Path | str,
        data_key: bytes,
        *,
        compression_level: int = 3,
        pack_size_limit: int = 256 * 1024 * 1024,
        lock_timeout: float | None = 60.0,
        autoflush_records: int = 10_000,
        autoflush_bytes: int = 64 * 1024 * 1024,
        block_target: int = blocks.TARGET,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pack_size_limit = pack_size_limit
        self.lock_timeout = lock_timeout
        self.autoflush_records = autoflush_records
        self.autoflush_bytes = autoflush_bytes
        self.block_target = block_target
        self._codec = RecordCodec(data_key, level=compression_level)
        self._key_check = key_check(data_key)
        self._packs = PackFiles(self.root / "packs")
        self._index = Index(self.root / "index.sqlite3")
        self._lock = threading.RLock()
        self._pending = PendingBlock()  # guarded by _lock; only while the writer lock is held
        self._block_cache = BlockCache()
        self._lock_fd: int | None = None
        self._append_fd: int | None = None
        self._append_pack = 0
        self._append_end = 0
        self._dirty: dict[int, int] = {}
        self._new_pack_file = False
        self._batch_depth = 0
        self._pending_records = 0
        self._pending_bytes = 0
        self._closed = False
        try:
            self._check_key()
            self._recover_at_open()
        except BaseException:
            self._index.close()
            self._packs.close()
            raise

    # ----------------------------------------------------------------- public API

    def put(
        self, data: bytes | bytearray | memoryview | BinaryIO, *, durable: bool = True
    ) -> BlobRef:
        """Store a message (bytes, or a binary stream read to its end) once."""
        if not isinstance(data, bytes | bytearray | memoryview):
            return self._put_stream(data, durable)
        raw = data if isinstance(data, bytes) else bytes(data)
        digest = hashlib.sha256(raw).digest()
        with self._lock:
            existing = self._known(digest)
        if existing is not None:
            return existing
        if len(raw) > STREAM_ABOVE:
            return self._put_stream(io.BytesIO(raw), durable)
        return self.put_prepared(self._prepare(raw, digest), durable=durable)

    def prepare(self, raw: bytes) -> PreparedBlob:
        """Hash and split a message, compress and encrypt its chunks (and its recipe, if
        too big for a block), without touching the store.

        Thread-safe and lock-free: a pipeline can prepare in parallel and hand the
        results to :meth:`put_prepared`, which appends and indexes; a small message's
        recipe is sealed there, with its neighbours, as a block.
        """
        return self._prepare(raw, hashlib.sha256(raw).digest())

    def prepare_many(self, raws: Iterable[bytes]) -> list[PreparedBlob]:
        """:meth:`prepare` for each message, with the small ones' recipes sealed together
        in blocks ahead of time (:mod:`.prepared`): what an import worker does."""
        prepared = [self.prepare(raw) for raw in raws]
        return seal_blocks(self._codec, prepared, self.block_target)

    def put_prepared(self, prepared: PreparedBlob, *, durable: bool = True) -> BlobRef:
        with self._lock:
            if self._lock_fd is None:
                existing = self._known(prepared.sha256)
                if existing is not None:
                    return existing
                self._acquire_write()
            # Checked (again) under the write lock: another writer may have stored it.
            existing = self._known(prepared.sha256)
            if existing is not None:
                self._after_duplicate(durable)
                return existing
            for digest, size, record in prepared.chunks:
                if self._index.lookup(KIND_CHUNK, digest) is None:
                    self._append(record, [(KIND_CHUNK, digest, size, -1)])
            if prepared.sealed:
                self._append(prepared.recipe, [(KIND_RECIPE, prepared.sha256, prepared.size, -1)])
            else:
                self._add_member(prepared.sha256, prepared.size, prepared.recipe)
            self._after_put(durable)
            return BlobRef(prepared.sha256.hex(), prepared.size, True)

    def put_prepared_many(self, prepared: Iterable[PreparedBlob]) -> int:
        """Put prepared messages, not durable (inside a batch, or until the next flush);
        how many were new. A block sealed ahead of time is appended as it is when all its
        members are new here; otherwise its new members join the open block one by one."""
        first: dict[bytes, PreparedBlob] = {}
        for blob in prepared:
            first.setdefault(blob.sha256, blob)
        with self._lock:
            self._acquire_write()
            known = self._index.known(KIND_RECIPE, list(first))
            new = {
                sha: blob
                for sha, blob in first.items()
                if sha not in known and self._pending.get(sha) is None
            }
            if not new:
                self._after_duplicate(False)
                return 0
            chunks = {d: (size, record) for b in new.values() for d, size, record in b.chunks}
            stored_chunks = self._index.known(KIND_CHUNK, list(chunks))
            for digest, (size, record) in chunks.items():  # before the recipes naming them
                if digest not in stored_chunks:
                    self._append(record, [(KIND_CHUNK, digest, size, -1)])
            whole: dict[int, bool] = {}  # block (by id) -> every member is new here
            for blob in new.values():
                block = blob.block
                if blob.sealed:
                    self._append(blob.recipe, [(KIND_RECIPE, blob.sha256, blob.size, -1)])
                    continue
                if block is not None and id(block) not in whole:
                    whole[id(block)] = all(
                        new.get(sha) is not None and new[sha].block is block
                        for sha, _ in block.members
                    )
                    if whole[id(block)]:
                        self._append_block(block)
                if block is None or not whole[id(block)]:
                    self._add_member(blob.sha256, blob.size, blob.recipe)
            self._pending_records += len(new)
            if (
                self._pending_records >= self.autoflush_records
                or self._pending_bytes >= self.autoflush_bytes
            ):
                self.flush()
            return len(new)

    def put_many(self, items: Iterable[bytes | BinaryIO]) -> list[BlobRef]:
        """Store many messages with one fsync at the end."""
        with self.batch():
            return [self.put(item, durable=False) for item in items]

    @contextmanager
    def batch(self) -> Iterator[BlobStore]:
        """Group commit: puts inside are made durable together when the block ends."""
        with self._lock:
            self._batch_depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    self.flush()

    def known(self, sha256s: Iterable[str]) -> set[str]:
        """Which of these messages (SHA-256 in hex) the store holds, written or in the
        open block: one index query per few hundred."""
        digests = [_digest(sha) for sha in sha256s]
        with self._lock:
            found = self._index.known(KIND_RECIPE, digests)
            found.update(d for d in digests if self._pending.get(d) is not None)
        return {digest.hex() for digest in found}

    def has(self, sha256: str) -> bool:
        return self.ref(sha256) is not None

    def ref(self, sha256: str) -> BlobRef | None:
        with self._lock:
            return self._known(_digest(sha256))

    def open(self, sha256: str) -> BlobReader:
        """A streaming reader over the original bytes (bounded memory)."""
        digest = _digest(sha256)
        with self._lock:
            location = self._index.lookup(KIND_RECIPE, digest)
            pending = None if location is not None else self._pending.get(digest)
        if pending is not None:
            return BlobReader(digest, pending.size, pending.plain, self._read_chunk)
        if location is None:
            raise BlobNotFound(f"no message {sha256} in this store")
        recipe = self._read_recipe(location, digest)
        return BlobReader(digest, location.size, recipe, self._read_chunk)

    def get(self, sha256: str) -> bytes:
        """The original bytes, checked against their SHA-256."""
        return self.open(sha256).readall()

    def flush(self) -> None:
        """Make every write so far durable (fsync, then index commit); release the lock."""
        with self._lock:
            if self._lock_fd is None:
                return
            try:
                self._seal_pending()
                if self._dirty and self._append_fd is not None:
                    os.fsync(self._append_fd)
                if self._new_pack_file:
                    fsync_dir(self._packs.directory)
                for pack, end in self._dirty.items():
                    self._index.set_committed_end(pack, end)
                self._index.commit()
            finally:
                self._index.rollback()  # no-op after a commit; undoes a failed one
                self._release_write()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                if self._append_fd is not None:
                    os.close(self._append_fd)
                    self._append_fd = None
                self._packs.close()
                self._index.close()

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> VerifyReport:
        """Re-read, decrypt and re-hash every record; rebuild every message."""
        return verify(self)

    def rebuild_index_from_packs(self, *, authenticate: bool = True) -> RebuildReport:
        """Regenerate the index from the pack files alone."""
        return rebuild_index_from_packs(self, authenticate=authenticate)

    def message_count(self) -> int:
        with self._lock:
            return self._index.count(KIND_RECIPE) + len(self._pending)

    def location(self, sha256: str) -> Location | None:
        """Where the message's recipe record lives (for diagnostics and tests)."""
        with self._lock:
            return self._index.lookup(KIND_RECIPE, _digest(sha256))

    # ------------------------------------------------------------------ writing

    def _known(self, digest: bytes) -> BlobRef | None:
        location = self._index.lookup(KIND_RECIPE, digest)
        if location is not None:
            return BlobRef(digest.hex(), location.size, False)
        pending = self._pending.get(digest)
        return None if pending is None else BlobRef(digest.hex(), pending.size, False)

    def _put_stream(self, stream: BinaryIO, durable: bool) -> BlobRef:
        hasher = hashlib.sha256()
        size = 0

        def hashed_blocks() -> Iterator[bytes]:
            nonlocal size
            for block in _blocks(stream):
                hasher.update(block)
                size += len(block)
                yield block

        with self._lock:
            self._acquire_write()
            builder = RecipeBuilder()
            try:
                for segment in chunking.split_blocks(hashed_blocks()):
                    self._add_segment(builder, segment)
            except BaseException:
                # The source failed midway. The chunks written so far are whole records
                # (harmless; a compaction drops them); do not keep the lock for them.
                if self._batch_depth == 0 and self._pending_records == 0:
                    self.flush()
                raise
            digest = hasher.digest()
            existing = self._known(digest)
            if existing is not None:
                self._after_duplicate(durable)
                return existing
            recipe = builder.encode()
            if len(recipe) < blocks.MEMBER_MAX:
                self._add_member(digest, size, recipe)
            else:
                self._append_record(KIND_RECIPE, digest, size, recipe)
            self._after_put(durable)
            return BlobRef(digest.hex(), size, True)

    def _prepare(self, raw: bytes, digest: bytes) -> PreparedBlob:
        builder = RecipeBuilder()
        chunks: list[tuple[bytes, int, bytes]] = []
        seen: set[bytes] = set()
        for segment in chunking.split(raw):
            if segment.inline:
                builder.literal(segment.data)
                continue
            chunk_digest = hashlib.sha256(segment.data).digest()
            size = len(segment.data)
            if chunk_digest not in seen:
                seen.add(chunk_digest)
                record = self._codec.seal(KIND_CHUNK, chunk_digest, size, segment.data)
                chunks.append((chunk_digest, size, record))
            builder.chunk(chunk_digest, size)
        recipe = builder.encode()
        if len(recipe) >= blocks.MEMBER_MAX:
            recipe = self._codec.seal(KIND_RECIPE, digest, len(raw), recipe)
        return PreparedBlob(digest, len(raw), tuple(chunks), recipe)

    def _add_segment(self, builder: RecipeBuilder, segment: chunking.Segment) -> None:
        if segment.inline:
            builder.literal(segment.data)
            return
        digest = hashlib.sha256(segment.data).digest()
        if self._index.lookup(KIND_CHUNK, digest) is None:
            self._append_record(KIND_CHUNK, digest, len(segment.data), segment.data)
        builder.chunk(digest, len(segment.data))

    def _append_record(self, kind: int, digest: bytes, size: int, plain: bytes) -> None:
        self._append(self._codec.seal(kind, digest, size, plain), [(kind, digest, size, -1)])

    def _add_member(self, digest: bytes, size: int, recipe: bytes) -> None:
        """Put a small message's recipe into the open block (sealed once it is full)."""
        self._pending.add(Member(KIND_RECIPE, digest, size, recipe))
        if self._pending.plain_bytes >= self.block_target:
            self._seal_pending()

    def _append_block(self, block: SealedBlock) -> None:
        rows = [(KIND_RECIPE, sha, size, slot) for slot, (sha, size) in enumerate(block.members)]
        self._append(block.record, rows)

    def _seal_pending(self) -> None:
        if len(self._pending):
            record, rows = blocks.seal(self._codec, self._pending.take())
            self._append(record, rows)

    def _append(self, record: bytes, rows: list[blocks.Row]) -> None:
        """Write one record and index what it holds (one row, or a block's members)."""
        if (
            self._append_end + len(record) > self.pack_size_limit
            and self._append_end > PACK_HEADER_SIZE
        ):
            self._roll()
        assert self._append_fd is not None
        offset = self._append_end
        try:
            write_all(self._append_fd, record)
        except BaseException:
            self._abandon_write(offset)
            raise
        self._append_end += len(record)
        self._dirty[self._append_pack] = self._append_end
        self._pending_bytes += len(record)
        where = (self._append_pack, offset, len(record))
        if len(rows) == 1:
            kind, digest, size, slot = rows[0]
            self._index.add(kind, digest, Location(*where, size, slot))
        else:  # a block's members (all messages), in one statement
            assert all(row[0] == KIND_RECIPE for row in rows)
            self._index.add_many(
                KIND_RECIPE, [(d, Location(*where, size, slot)) for _, d, size, slot in rows]
            )

    def _abandon_write(self, offset: int) -> None:
        """A write failed (disk full, I/O error): cut the partial record, forget the
        uncommitted index rows and let go of the lock. Whole records written earlier in
        this batch stay in the pack and are indexed again by the next writer."""
        self._block_cache.clear()  # a block cached from the cut bytes must not be served
        try:
            if self._append_fd is not None:
                os.ftruncate(self._append_fd, offset)
        except OSError:
            pass  # the next writer's tail repair cuts it instead
        finally:
            self._index.rollback()
            self._release_write()

    def _roll(self) -> None:
        assert self._append_fd is not None
        os.fsync(self._append_fd)
        os.close(self._append_fd)
        self._append_pack += 1
        self._append_fd = self._packs.create(self._append_pack)
        self._append_end = PACK_HEADER_SIZE
        self._dirty[self._append_pack] = self._append_end
        self._new_pack_file = True

    def _after_put(self, durable: bool) -> None:
        self._pending_records += 1
        if (durable and self._batch_depth == 0) or (
            self._pending_records >= self.autoflush_records
            or self._pending_bytes >= self.autoflush_bytes
        ):
            self.flush()

    def _after_duplicate(self, durable: bool) -> None:
        """Nothing new was written: do not keep the lock just for this put."""
        if self._batch_depth == 0 and (durable or self._pending_records == 0):
            self.flush()

    def _acquire_write(self, *, recover: bool = True, wait: bool = True) -> None:
        """Take the tenant's write lock and open the index transaction (if not held)."""
        if self._closed:
            raise StoreError("the store is closed")
        if self._lock_fd is not None:
            return
        fd = os.open(self.root / "write.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._flock(fd, self.lock_timeout if wait else 0.0)
            self._index.begin()
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        try:
            if recover:
                self._recover_tails()
        except BaseException:
            self._index.rollback()
            self._release_write()
            raise

    def _flock(self, fd: int, timeout: float | None) -> None:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLocked(
                        f"another writer held {self.root} for over {timeout}s"
                    ) from None
                time.sleep(0.005)

    def _release_write(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        self._dirty.clear()
        self._new_pack_file = False
        self._pending_records = 0
        self._pending_bytes = 0
        self._pending.take()  # an open block not sealed by now was abandoned with its batch
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _recover_tails(self) -> None:
        """Index whole records other writers left uncommitted; cut off a torn tail."""
        committed = self._index.packs()
        ids = self._packs.ids()
        for pack in ids:
            start = committed.get(pack, 0)
            size = self._packs.size(pack)
            if pack in committed and size == start:
                continue
            if size < start:
                raise CorruptRecord(
                    f"pack {pack} of {self.root} is shorter ({size} bytes) than the index "
                    f"says ({start}); nothing more is written until `verify` has been run "
                    "and the index rebuilt from the packs"
                )
            found, end = self._packs.repair_tail(pack, start)
            self._block_cache.clear()
            for offset, header in found:
                for kind, digest, size, slot in self._rows_of(pack, offset, header):
                    location = Location(pack, offset, header.record_len, size, slot)
                    self._index.add(kind, digest, location)
            self._dirty[pack] = end
        self._open_append(ids[-1] if ids else 0)

    def _recover_at_open(self) -> None:
        """Repair a pack tail left by a crashed writer now, unless a writer is active
        (then it is that writer's job, done when it next takes the lock)."""
        committed = self._index.packs()
        ids = self._packs.ids()
        if not ids:
            return
        suspects = {pack for pack in ids if pack not in committed} | {ids[-1]}
        if all(committed.get(pack) == self._packs.size(pack) for pack in suspects):
            return
        with self._lock:
            try:
                self._acquire_write(wait=False)
            except StoreLocked:
                return
            self.flush()

    def _open_append(self, last: int) -> None:
        if self._append_fd is not None and self._append_pack != last:
            os.close(self._append_fd)
            self._append_fd = None
        if last == 0:
            self._append_pack = 1
            self._append_fd = self._packs.create(1)
            self._new_pack_file = True
            self._dirty[1] = PACK_HEADER_SIZE
        elif self._append_fd is None:
            self._append_pack = last
            self._append_fd = self._packs.open_for_append(last)
        self._append_end = os.fstat(self._append_fd).st_size

    def _check_key(self) -> None:
        stored = self._index.get_meta("key_check")
        if stored == self._key_check:
            return
        if stored is not None:
            raise WrongKeyError(f"the data key given is not the key of the store at {self.root}")
        with self._lock:
            self._acquire_write(recover=False)
            try:
                stored = self._index.get_meta("key_check")
                if stored is None and self._packs.ids():
                    # Packs without an index (it was lost or deleted): regenerate it.
                    self._index.rollback()
                    self._release_write()
                    self.rebuild_index_from_packs()
                    return
                if stored is not None and stored != self._key_check:
                    raise WrongKeyError(
                        f"the data key given is not the key of the store at {self.root}"
                    )
                self._index.set_meta("format", _FORMAT)
                self._index.set_meta("key_check", self._key_check)
                self._recover_tails()
            except BaseException:
                self._index.rollback()
                self._release_write()
                raise
            self.flush()


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        block = stream.read(READ_BLOCK)
        if not block:
            return
        yield block
