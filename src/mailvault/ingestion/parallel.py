"""Parse and prepare messages on the other cores during bulk imports.

Parsing (Python) and preparing the stored form (hash, split, compress, encrypt) are the
CPU-heavy steps of ingestion and need nothing but the raw bytes and the tenant's store
codec, so a bulk import runs them in forked worker processes and keeps only the ordered
writes (store append, database, index) in the importing process. Workers are forked from
the importer after its store is open and inherit it; they never write to it.

A batch is handed over with :meth:`PreparePool.submit` (one slice per worker, sent over
its pipe) and collected with :meth:`PendingBatch.get`; the importer records the previous
batch in between. The pool is a few pipes rather than ``multiprocessing.Pool``: that
one's three helper threads cost the importer more CPU (and GIL) than the data itself.
Results travel as plain tuples (a pickled dataclass costs several times more to load).
A worker that dies makes ``get`` raise instead of waiting forever.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from mailvault.archive.store import BlobStore, PreparedBlob, SealedBlock
from mailvault.ingestion.parse import ParsedMessage, parse_message
from mailvault.supervisor import die_with_parent

Prepared = tuple[str, ParsedMessage, PreparedBlob | None]
# What a worker sends back per message: sha256 hex, the parsed fields as a tuple and the
# stored form as (sha256, size, chunks, recipe, the number of its pre-sealed block or -1);
# and once per slice, the blocks as (record, members).
_Wire = tuple[
    str,
    tuple[object, ...],
    tuple[bytes, int, tuple[tuple[bytes, int, bytes], ...], bytes, int],
]
_BlockWire = tuple[bytes, tuple[tuple[bytes, int], ...]]


class WorkerFailed(RuntimeError):
    """A prepare worker died or failed; the batch was not prepared."""


def prepare_one(raw: bytes) -> Prepared:
    """SHA-256, parse, and the stored form of one message (in this process)."""
    return hashlib.sha256(raw).hexdigest(), parse_message(raw), None


def _prepare_chunk(store: BlobStore, raws: list[bytes]) -> tuple[list[_Wire], list[_BlockWire]]:
    """In a worker: hash, parse and seal each message (small ones together in blocks),
    in wire form."""
    prepared = store.prepare_many(raws)
    numbers: dict[int, int] = {}
    sealed: list[_BlockWire] = []
    out: list[_Wire] = []
    for raw, blob in zip(raws, prepared, strict=True):
        number = -1
        if blob.block is not None:
            number = numbers.get(id(blob.block), -1)
            if number < 0:
                number = numbers[id(blob.block)] = len(sealed)
                sealed.append((blob.block.record, blob.block.members))
        out.append(
            (
                blob.sha256.hex(),
                parse_message(raw).as_tuple(),
                (blob.sha256, blob.size, blob.chunks, blob.recipe, number),
            )
        )
    return out, sealed


def _from_wire(wire: _Wire, sealed: list[SealedBlock]) -> Prepared:
    sha, fields, (digest, size, chunks, recipe, number) = wire
    block = sealed[number] if number >= 0 else None
    return sha, ParsedMessage.from_tuple(fields), PreparedBlob(digest, size, chunks, recipe, block)


def _worker(conn: Connection, store: BlobStore, siblings: list[Connection]) -> None:
    """A worker's loop: a pickled list of messages in, their wire forms (or the error)
    out; an empty message ends it.

    The fork copied the importer's ends of the workers forked before this one: they are
    closed here, or a worker would never see its pipe close when the importer dies. And
    the kernel ends the worker with the importer (SIGKILL included)."""
    die_with_parent()
    for sibling in siblings:
        sibling.close()
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        if not data:
            return
        try:
            reply: Any = ("ok", _prepare_chunk(store, pickle.loads(data)))  # noqa: S301
        except Exception as exc:  # reported to the importer, which raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


class PendingBatch:
    """A batch the workers are preparing; :meth:`get` waits for it (once)."""

    def __init__(self, conns: list[Connection]) -> None:
        self._conns = conns

    def get(self) -> list[Prepared]:
        out: list[Prepared] = []
        conns, self._conns = self._conns, []
        for conn in conns:
            try:
                status, payload = pickle.loads(conn.recv_bytes())  # noqa: S301 (our own worker)
            except (EOFError, OSError) as exc:
                raise WorkerFailed("a prepare worker died") from exc
            if status != "ok":
                raise WorkerFailed(f"a prepare worker failed: {payload}")
            wires, block_wires = payload
            sealed = [SealedBlock(record, members) for record, members in block_wires]
            out.extend(_from_wire(wire, sealed) for wire in wires)
        return out


class PreparePool:
    """``workers`` forked processes preparing batches of messages. Do not submit a batch
    before the previous one was collected (``get``): a worker takes one at a time."""

    def __init__(self, store: BlobStore, workers: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._pending: PendingBatch | None = None
        try:
            for _ in range(max(1, workers)):
                mine, theirs = ctx.Pipe(duplex=True)
                proc = ctx.Process(
                    target=_worker, args=(theirs, store, list(self._conns)), daemon=True
                )
                proc.start()
                theirs.close()
                self._conns.append(mine)
                self._procs.append(proc)
        except BaseException:
            self.terminate()
            raise

    @property
    def workers(self) -> int:
        return len(self._conns)

    def submit(self, raws: list[bytes]) -> PendingBatch:
        """Start preparing ``raws`` (results in the same order) and return at once."""
        if self._pending is not None and self._pending._conns:
            raise RuntimeError("the previous batch was not collected")
        used: list[Connection] = []
        for conn, part in zip(self._conns, _slices(raws, len(self._conns)), strict=False):
            if not part:
                continue
            try:
                conn.send_bytes(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError as exc:
                raise WorkerFailed("a prepare worker died") from exc
            used.append(conn)
        self._pending = PendingBatch(used)
        return self._pending

    def map(self, raws: list[bytes]) -> list[Prepared]:
        return self.submit(raws).get()

    def close(self) -> None:
        """Let the workers finish and exit (a batch not collected is dropped)."""
        for conn in self._conns:
            try:
                if self._pending is not None and conn in self._pending._conns:
                    conn.recv_bytes()
                conn.send_bytes(b"")
            except (EOFError, OSError):
                pass
        self._join()

    def terminate(self) -> None:
        for proc in self._procs:
            proc.terminate()
        self._join()

    def _join(self) -> None:
        for proc in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns, self._pending = [], [], None

    def __enter__(self) -> PreparePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _slices(raws: list[bytes], parts: int) -> list[list[bytes]]:
    """``raws`` cut into ``parts`` runs of about the same number of bytes, in order."""
    total = sum(len(raw) for raw in raws)
    out: list[list[bytes]] = [[] for _ in range(parts)]
    done = 0
    for raw in raws:
        index = min(parts - 1, done * parts // total) if total else 0
        out[index].append(raw)
        done += len(raw)
    return out


def prepare_in_process(raws: list[bytes]) -> list[Prepared]:
    return [prepare_one(raw) for raw in raws]
