"""The archive's blob store: byte-exact, deduplicated, encrypted, crash-safe packs."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import multiprocessing
import os
import random
import resource
import signal
import stat
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvault.archive.store import (
    BlobNotFound,
    BlobStore,
    IntegrityError,
    KeyRing,
    KeyUnwrapError,
    MasterKeyError,
    StoreAuthError,
    StoreLocked,
    WrongKeyError,
    chunking,
    load_master_key,
)
from mailvault.archive.store.codec import RecordCodec
from mailvault.archive.store.records import (
    HEADER_SIZE,
    KIND_RECIPE,
    TRAILER_SIZE,
    build_header,
    frame,
    parse_header,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def pack_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "packs").iterdir())


def attachment(size: int, seed: int) -> bytes:
    """A base64 body as a mail client writes it (76 characters a line, CRLF)."""
    data = random.Random(seed).randbytes(size)
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def mime_message(subject: str, body_b64: bytes, *, text: str = "Hello") -> bytes:
    head = (
        f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XyZ"\r\n\r\n'
        f"--XyZ\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
        '--XyZ\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    return head + body_b64 + b"--XyZ--\r\n"


MALFORMED = [
    b"",
    b"no headers at all, no newline",
    b'Subject: unterminated\r\nContent-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\n',
    b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n--\r\n' * 50,
    b"\x00\xff\xfe binary \r\r\n\n\r" * 3000,
    b"Content-Transfer-Encoding: base64\n\n" + b"QUJD" * 30000,  # one 120 KB line
    mime_message("lf only", attachment(9000, 1)).replace(b"\r\n", b"\n"),
    mime_message("cut short", attachment(20000, 2))[:-3000],
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlobStore]:
    with BlobStore(tmp_path / "store", KEY) as opened:
        yield opened


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("raw", [*MALFORMED, mime_message("ok", attachment(300000, 3))])
def test_round_trip_is_byte_exact_as_bytes_and_as_stream(store: BlobStore, raw: bytes) -> None:
    ref = store.put(raw)
    assert ref.sha256 == hashlib.sha256(raw).hexdigest()
    assert ref.size == len(raw)
    assert store.has(ref.sha256)
    assert store.get(ref.sha256) == raw
    with store.open(ref.sha256) as reader:
        pieces = []
        while piece := reader.read(777):
            pieces.append(piece)
    assert b"".join(pieces) == raw
    again = store.put(io.BytesIO(raw))
    assert again == ref and not again.created


def test_random_bytes_round_trip(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store:

        @settings(max_examples=120, deadline=None)
        @given(
            st.one_of(
                st.binary(max_size=30_000),
                st.lists(
                    st.one_of(
                        st.binary(max_size=300),
                        st.binary(min_size=3000, max_size=9000).map(base64.encodebytes),
                    ),
                    max_size=6,
                ).map(b"\r\n".join),
            )
        )
        def check(raw: bytes) -> None:
            ref = store.put(raw, durable=False)
            assert store.get(ref.sha256) == raw
            assert store.open(ref.sha256).read() == raw

        check()
        store.flush()
        assert store.verify().ok


mime_like = st.lists(
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"\r\n", b"\n", b"--boundary\r\n", b"Content-Type: text/plain\r\n"]),
        st.binary(min_size=1000, max_size=12_000).map(base64.encodebytes),
        st.binary(min_size=1000, max_size=6000).map(
            lambda b: base64.encodebytes(b).replace(b"\n", b"\r\n")
        ),
        st.text(alphabet="ABCxyz0189+/=", min_size=30, max_size=1100).map(
            lambda t: t.encode() + b"\n"
        ),
    ),
    max_size=12,
).map(b"".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mime_like, cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=20))
def test_split_is_exact_and_independent_of_how_the_stream_is_cut(
    raw: bytes, cuts: list[int]
) -> None:
    """Streamed and whole-buffer splits agree, so a stream dedups like bytes do."""
    saved = (chunking.MAX_CHUNK, chunking.INLINE_MAX, chunking.INLINE_BUDGET)
    chunking.MAX_CHUNK, chunking.INLINE_MAX, chunking.INLINE_BUDGET = 9000, 3000, 6000
    try:
        whole = chunking.split(raw)
        blocks, position = [], 0
        for cut in cuts:
            blocks.append(raw[position : position + cut])
            position += cut
        blocks.append(raw[position:])
        streamed = list(chunking.split_blocks(blocks))
    finally:
        chunking.MAX_CHUNK, chunking.INLINE_MAX, chunking.INLINE_BUDGET = saved
    assert b"".join(s.data for s in whole) == raw
    assert streamed == whole
    assert all(len(s.data) <= 9000 for s in whole if not s.inline)


def test_base64_attachment_becomes_its_own_chunk() -> None:
    body = attachment(30_000, 4)
    segments = chunking.split(mime_message("x", body))
    assert [s.data for s in segments if not s.inline] == [body]


# ------------------------------------------------------------------ single instance


def test_identical_message_is_stored_once(store: BlobStore) -> None:
    raw = mime_message("twice", attachment(50_000, 5))
    first = store.put(raw)
    size = pack_bytes(store.root)
    second = store.put(raw)
    assert second == first
    assert first.created and not second.created
    assert pack_bytes(store.root) == size
    assert store.message_count() == 1


def test_identical_attachment_in_different_messages_is_stored_once(store: BlobStore) -> None:
    shared = attachment(200_000, 6)  # 200 KB of random data, ~270 KB of base64
    one = mime_message("first", shared, text="Please find the report attached.")
    other = mime_message("second, to someone else", shared, text="Forwarding this.")
    store.put(one)
    after_one = pack_bytes(store.root)
    store.put(other)
    after_two = pack_bytes(store.root)
    assert after_two - after_one < 2_000  # just the second message's own headers and text
    assert after_two < 1.1 * after_one  # far below 2x
    assert store.get(hashlib.sha256(other).hexdigest()) == other
    assert store.verify().ok


# ------------------------------------------------------------------ crash safety


def _write_then_die(
    root: Path, durable: list[bytes], pending: list[bytes], block_target: int = 1
) -> None:
    # block_target=1: every message is written as soon as it is put (a block of one);
    # tests/archive/test_store_blocks.py crashes with bigger blocks.
    store = BlobStore(root, KEY, block_target=block_target)
    for raw in durable:
        store.put(raw)
    for raw in pending:
        store.put(raw, durable=False)
    os._exit(0)  # no flush, no close: the index never commits the pending puts


def test_torn_tail_is_cut_off_and_earlier_records_survive(tmp_path: Path) -> None:
    root = tmp_path / "store"
    durable = [mime_message(f"kept {i}", attachment(5000 + i, i)) for i in range(3)]
    whole_but_uncommitted = b"Subject: written, never committed\r\n\r\nbody\r\n"
    torn = b"Subject: torn\r\n\r\n" + os.urandom(3000)
    child = multiprocessing.get_context("fork").Process(
        target=_write_then_die, args=(root, durable, [whole_but_uncommitted, torn])
    )
    child.start()
    child.join()
    assert child.exitcode == 0
    pack = root / "packs" / "00000001.pack"
    with open(pack, "r+b") as handle:  # the crash cut the last record in the middle
        handle.truncate(pack.stat().st_size - 1500)
    torn_size = pack.stat().st_size

    with BlobStore(root, KEY) as store:
        for raw in durable:
            assert store.get(hashlib.sha256(raw).hexdigest()) == raw
        # A record that reached the disk whole is indexed again; the torn one is gone.
        assert store.get(hashlib.sha256(whole_but_uncommitted).hexdigest()) == (
            whole_but_uncommitted
        )
        assert not store.has(hashlib.sha256(torn).hexdigest())
        assert pack.stat().st_size < torn_size
        ref = store.put(torn)
        assert store.get(ref.sha256) == torn
        report = store.verify()
    assert report.ok, report.summary()
    assert report.messages == 5


def _fill_the_disk(root: Path, messages: list[bytes], result: Path) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG, not death
    store = BlobStore(root, KEY)
    stored = [store.put(os.urandom(2_000_000)).sha256]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    pack = root / "packs" / "00000001.pack"
    resource.setrlimit(resource.RLIMIT_FSIZE, (pack.stat().st_size + 50_000, hard))
    failure = 0
    try:
        for raw in messages:
            stored.append(store.put(raw).sha256)
    except OSError as exc:
        failure = exc.errno or 0
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    stored.append(store.put(b"Subject: after the disk was freed\r\n\r\n.\r\n").sha256)
    store.close()
    result.write_text("\n".join(stored))
    os._exit(0 if failure == errno.EFBIG else 3)


def test_a_failed_write_never_damages_what_was_there(tmp_path: Path) -> None:
    messages = [random.Random(i).randbytes(9000) for i in range(20)]
    result = tmp_path / "stored.txt"
    child = multiprocessing.get_context("fork").Process(
        target=_fill_the_disk, args=(tmp_path / "store", messages, result)
    )
    child.start()
    child.join()
    assert child.exitcode == 0  # the disk did fill up mid-write
    stored = result.read_text().split()
    assert 3 < len(stored) < 2 + len(messages)
    with BlobStore(tmp_path / "store", KEY) as store:
        assert all(store.has(sha) for sha in stored)
        for raw in messages[: len(stored) - 2]:
            assert store.get(hashlib.sha256(raw).hexdigest()) == raw
        assert not store.has(hashlib.sha256(messages[len(stored) - 2]).hexdigest())
        report = store.verify()
    assert report.ok, report.summary()
    assert report.messages == len(stored)


def test_flush_makes_a_batch_durable_and_readable_elsewhere(tmp_path: Path) -> None:
    messages = [f"Subject: {i}\r\n\r\nbatch body {i}\r\n".encode() for i in range(50)]
    with BlobStore(tmp_path, KEY) as writer, BlobStore(tmp_path, KEY) as reader:
        with writer.batch():
            refs = [writer.put(m, durable=False) for m in messages]
            assert writer.get(refs[0].sha256) == messages[0]  # read-your-writes
            assert not reader.has(refs[0].sha256)  # not committed yet
        assert all(reader.get(r.sha256) == m for r, m in zip(refs, messages, strict=True))


# ------------------------------------------------------------------ integrity


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_verify_names_the_record_with_one_flipped_byte(store: BlobStore) -> None:
    raws = [f"Subject: m{i}\r\n\r\n{'text ' * 400}{i}\r\n".encode() for i in range(20)]
    refs = [store.put(raw) for raw in raws]  # durable one by one: a record each
    assert store.verify().ok
    victim = refs[7]
    location = store.location(victim.sha256)
    assert location is not None
    body_middle = location.offset + HEADER_SIZE + (location.length - HEADER_SIZE) // 2
    _flip(store.root / "packs" / f"{location.pack:08d}.pack", body_middle)

    report = store.verify()
    assert not report.ok
    assert [(m.pack, m.offset, m.sha256, m.kind) for m in report.mismatches] == [
        (location.pack, location.offset, victim.sha256, "message")
    ]
    assert report.messages == 19
    with pytest.raises(StoreAuthError, match=victim.sha256):
        store.get(victim.sha256)
    assert store.get(refs[8].sha256) == raws[8]


def test_verify_reports_a_damaged_shared_chunk_and_the_messages_using_it(
    store: BlobStore,
) -> None:
    shared = attachment(40_000, 8)
    one = store.put(mime_message("a", shared))
    two = store.put(mime_message("b", shared))
    chunk_sha = hashlib.sha256(shared).digest()
    chunk = store._index.lookup(1, chunk_sha)
    assert chunk is not None
    _flip(store.root / "packs" / f"{chunk.pack:08d}.pack", chunk.offset + chunk.length - 10)
    problems = {(m.kind, m.sha256) for m in store.verify().mismatches}
    assert problems == {
        ("chunk", chunk_sha.hex()),
        ("message", one.sha256),
        ("message", two.sha256),
    }


def test_a_damaged_header_is_skipped_and_named_through_the_index(store: BlobStore) -> None:
    refs = [store.put(f"Subject: h{i}\r\n\r\n{i}\r\n".encode()) for i in range(5)]
    location = store.location(refs[2].sha256)
    assert location is not None
    _flip(store.root / "packs" / f"{location.pack:08d}.pack", location.offset + 10)
    report = store.verify()
    assert [(m.offset, m.sha256) for m in report.mismatches] == [(location.offset, refs[2].sha256)]
    assert report.messages == 4  # the scan found its way to the records after it


def test_wrong_key_fails_authentication(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store:
        store.put(b"Subject: secret\r\n\r\nfor tenant A only\r\n")
    with pytest.raises(WrongKeyError):
        BlobStore(tmp_path, OTHER_KEY)
    # And record by record: a record sealed with one key never opens with another.
    sealed = RecordCodec(KEY).seal(KIND_RECIPE, b"\x11" * 32, 5, b"hello" * 40)
    header = parse_header(sealed)
    assert header is not None
    body = sealed[HEADER_SIZE:-TRAILER_SIZE]
    assert RecordCodec(KEY).open(header, body) == b"hello" * 40
    with pytest.raises(StoreAuthError):
        RecordCodec(OTHER_KEY).open(header, body)


def test_a_record_moved_under_another_sha256_fails_authentication() -> None:
    sealed = RecordCodec(KEY).seal(KIND_RECIPE, b"\x11" * 32, 5, b"payload " * 20)
    header = parse_header(sealed)
    assert header is not None
    body = sealed[HEADER_SIZE:-TRAILER_SIZE]
    forged_header = build_header(
        kind=header.kind,
        flags=header.flags,
        key_id=header.key_id,
        sha256=b"\x22" * 32,
        blob_size=header.blob_size,
        plain_len=header.plain_len,
        body_len=header.body_len,
        nonce=header.nonce,
    )
    forged = parse_header(frame(forged_header, body))  # framing checksums all hold
    assert forged is not None
    with pytest.raises(StoreAuthError):
        RecordCodec(KEY).open(forged, body)


def test_missing_blob_is_a_clear_error(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)
    with pytest.raises(ValueError):
        store.get("not-a-sha")


# ------------------------------------------------------------------ index rebuild


def test_index_rebuilt_from_packs_gives_identical_lookups(tmp_path: Path) -> None:
    shared = attachment(30_000, 9)
    raws = [mime_message(f"r{i}", shared if i % 2 else attachment(9000, i)) for i in range(40)]
    raws += [f"Subject: plain {i}\r\n\r\nbody\r\n".encode() for i in range(40)]
    with BlobStore(tmp_path, KEY, pack_size_limit=64 * 1024) as store:
        refs = store.put_many(raws)
        before = {r.sha256: store.location(r.sha256) for r in refs}
        chunks_before = store._index.count(1)
    assert len(list((tmp_path / "packs").iterdir())) > 3  # rolled into several packs

    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with BlobStore(tmp_path, KEY, pack_size_limit=64 * 1024) as store:  # rebuilds on open
        assert {r.sha256: store.location(r.sha256) for r in refs} == before
        assert store._index.count(1) == chunks_before
        report = store.rebuild_index_from_packs()  # and again, explicitly
        assert report.messages == len(raws) and not report.damaged
        assert {r.sha256: store.location(r.sha256) for r in refs} == before
        assert all(store.get(r.sha256) == raw for r, raw in zip(refs, raws, strict=True))
        new = store.put(b"Subject: after the rebuild\r\n\r\n.\r\n")
        assert store.get(new.sha256).startswith(b"Subject: after")
        assert store.verify().ok


def test_rebuild_with_the_wrong_key_refuses(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store:
        store.put(b"Subject: x\r\n\r\ny\r\n")
    (tmp_path / "index.sqlite3").unlink()
    with pytest.raises(WrongKeyError):
        BlobStore(tmp_path, OTHER_KEY)


# ------------------------------------------------------------------ memory


def test_a_50_mb_message_streams_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "big.eml"
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        for part in (b"Subject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n",):
            handle.write(part)
            digest.update(part)
        rng = random.Random(10)
        while handle.tell() < 50 * 1024 * 1024:
            block = base64.encodebytes(rng.randbytes(570_000)).replace(b"\n", b"\r\n")
            handle.write(block)
            digest.update(block)
    size = source.stat().st_size
    with BlobStore(tmp_path / "store", KEY) as store:
        tracemalloc.start()
        try:
            with open(source, "rb") as handle:
                ref = store.put(handle)
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            check = hashlib.sha256()
            with store.open(ref.sha256) as reader:
                while piece := reader.read(256 * 1024):
                    check.update(piece)
            _, read_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            assert len(store.get(ref.sha256)) == size
            _, get_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert ref.sha256 == digest.hexdigest() == check.hexdigest()
    assert ref.size == size
    assert put_peak < 16 * 1024 * 1024, put_peak  # a few 1 MiB blocks, not the message
    assert read_peak < 8 * 1024 * 1024, read_peak
    assert get_peak < 2.5 * size, get_peak  # the pieces and the joined result


# ------------------------------------------------------------------ concurrency


def _writer(root: str, worker: int, count: int) -> None:
    with BlobStore(root, KEY, pack_size_limit=256 * 1024, lock_timeout=None) as store:
        for start in range(0, count, 25):
            with store.batch():
                for i in range(start, start + 25):
                    store.put(
                        f"Subject: w{worker} m{i}\r\n\r\n{'x' * (i * 37)}\r\n".encode(),
                        durable=False,
                    )
                    store.put(
                        f"Subject: shared {i}\r\n\r\nboth write this\r\n".encode(), durable=False
                    )
    os._exit(0)


def test_concurrent_writers_are_serialized(tmp_path: Path) -> None:
    BlobStore(tmp_path, KEY).close()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 150)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    with BlobStore(tmp_path, KEY) as store:
        for worker in (1, 2):
            for i in range(150):
                raw = f"Subject: w{worker} m{i}\r\n\r\n{'x' * (i * 37)}\r\n".encode()
                assert store.get(hashlib.sha256(raw).hexdigest()) == raw
        assert store.message_count() == 2 * 150 + 150
        report = store.verify()
    assert report.ok, report.summary()


def test_a_second_writer_waits_for_the_lock(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as first, BlobStore(tmp_path, KEY, lock_timeout=0.2) as second:
        first.put(b"Subject: 1\r\n\r\n1\r\n", durable=False)  # holds the lock until flush
        with pytest.raises(StoreLocked):
            second.put(b"Subject: 2\r\n\r\n2\r\n")
        first.flush()
        assert second.put(b"Subject: 2\r\n\r\n2\r\n").created
        # A put that finds its bytes already stored does not keep the lock either.
        assert not first.put(io.BytesIO(b"Subject: 2\r\n\r\n2\r\n")).created
        assert not first.put(b"Subject: 2\r\n\r\n2\r\n", durable=False).created
        assert second.put(b"Subject: 3\r\n\r\n3\r\n").created
        assert second.has(hashlib.sha256(b"Subject: 1\r\n\r\n1\r\n").hexdigest())


def test_verify_runs_beside_a_writer(tmp_path: Path) -> None:
    done = threading.Event()

    def write() -> None:
        with BlobStore(tmp_path, KEY, pack_size_limit=32 * 1024) as writer:
            for start in range(0, 400, 20):
                writer.put_many(
                    f"Subject: {i}\r\n\r\n{os.urandom(200).hex()}\r\n".encode()
                    for i in range(start, start + 20)
                )
        done.set()

    BlobStore(tmp_path, KEY).close()
    thread = threading.Thread(target=write)
    thread.start()
    reports = []
    with BlobStore(tmp_path, KEY) as verifier:
        while not done.is_set():
            reports.append(verifier.verify())
        thread.join()
        reports.append(verifier.verify())
    assert all(report.ok for report in reports), [r.summary() for r in reports if not r.ok]
    assert reports[-1].messages == 400


class _FailingSource(io.RawIOBase):
    """A source (a network download, say) that dies after some megabytes."""

    def __init__(self, fail_after: int) -> None:
        self.sent = 0
        self.fail_after = fail_after
        self.rng = random.Random(12)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= self.fail_after:
            raise ConnectionResetError("the source went away")
        block = base64.encodebytes(self.rng.randbytes(300_000))
        self.sent += len(block)
        return block


def test_a_source_failing_midway_stores_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    with BlobStore(tmp_path, KEY) as store, BlobStore(tmp_path, KEY, lock_timeout=0.2) as other:
        kept = store.put(b"Subject: before\r\n\r\n.\r\n")
        with pytest.raises(ConnectionResetError):
            store.put(_FailingSource(3_000_000))
        assert store.message_count() == 1
        assert other.put(b"Subject: after\r\n\r\n.\r\n").created  # not locked out
        assert store.get(kept.sha256) == b"Subject: before\r\n\r\n.\r\n"
        assert store.verify().ok


def test_threads_share_one_store(store: BlobStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(60):
                raw = f"Subject: t{n} {i}\r\n\r\n{'y' * i}\r\n".encode()
                ref = store.put(raw, durable=i % 10 == 0)
                assert store.get(ref.sha256) == raw
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.flush()
    assert not errors
    assert store.message_count() == 240
    assert store.verify().ok


# ------------------------------------------------------------------ keys


def test_master_key_from_environment_or_generated_file(tmp_path: Path) -> None:
    key = os.urandom(32)
    assert (
        load_master_key(tmp_path / "k", {"MAILVAULT_MASTER_KEY": base64.b64encode(key).decode()})
        == key
    )
    with pytest.raises(MasterKeyError):
        load_master_key(
            tmp_path / "k", {"MAILVAULT_MASTER_KEY": base64.b64encode(b"short").decode()}
        )
    with pytest.raises(MasterKeyError):
        load_master_key(tmp_path / "k", {"MAILVAULT_MASTER_KEY": "not base64!"})
    generated = load_master_key(tmp_path / "var" / "master.key", {})
    assert len(generated) == 32
    assert stat.S_IMODE((tmp_path / "var" / "master.key").stat().st_mode) == 0o600
    assert load_master_key(tmp_path / "var" / "master.key", {}) == generated  # created once


def test_wrapped_data_key_is_bound_to_master_key_and_tenant() -> None:
    ring = KeyRing(os.urandom(32))
    data_key, wrapped = ring.new_data_key(context=b"tenant-1")
    assert ring.unwrap(wrapped, context=b"tenant-1") == data_key
    with pytest.raises(KeyUnwrapError):
        ring.unwrap(wrapped, context=b"tenant-2")
    with pytest.raises(KeyUnwrapError):
        KeyRing(os.urandom(32)).unwrap(wrapped, context=b"tenant-1")


def test_integrity_error_when_a_rebuilt_message_does_not_hash(store: BlobStore) -> None:
    """The reader proves every byte: a recipe pointing at the wrong content is caught."""
    from mailvault.archive.store.reader import BlobReader
    from mailvault.archive.store.recipe import RecipeBuilder

    builder = RecipeBuilder()
    builder.literal(b"not the original")
    reader = BlobReader(
        hashlib.sha256(b"the original").digest(), 16, builder.encode(), store._read_chunk
    )
    with pytest.raises(IntegrityError):
        reader.read()


# ------------------------------------------------------------------ Django wiring


@pytest.fixture
def store_settings(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings.MAILVAULT_STORE_DIR = tmp_path / "store"
    settings.MAILVAULT_MASTER_KEY_FILE = tmp_path / "var" / "master.key"
    monkeypatch.delenv("MAILVAULT_MASTER_KEY", raising=False)
    return tmp_path


@pytest.mark.django_db
def test_store_for_keeps_tenants_apart_and_destroying_the_key_shreds_the_archive(
    store_settings: Path,
) -> None:
    from mailvault.archive.models import TenantDataKey
    from mailvault.archive.store import (
        KeyManagementError,
        TenantKeyDestroyed,
        create_tenant_key,
        destroy_tenant_key,
        store_for,
    )
    from mailvault.tenancy.context import tenant_context
    from mailvault.tenancy.models import Tenant

    acme, other = Tenant.objects.create(name="acme"), Tenant.objects.create(name="other")
    raw = mime_message("confidential", attachment(10_000, 11))
    with store_for(acme) as store:
        ref = store.put(raw)
    with store_for(acme) as store:
        assert store.get(ref.sha256) == raw
    with store_for(other) as store:
        assert not store.has(ref.sha256)
    assert (store_settings / "var" / "master.key").exists()

    # A wrapped key copied to another tenant's row does not unwrap there.
    with tenant_context(acme):
        acme_wrapped = bytes(TenantDataKey.objects.get().wrapped_key)
    with tenant_context(other):
        TenantDataKey.objects.update(wrapped_key=acme_wrapped)
    with pytest.raises(KeyUnwrapError):
        store_for(other)

    destroy_tenant_key(acme)
    with tenant_context(acme):
        row = TenantDataKey.objects.get()
    assert bytes(row.wrapped_key) == b"" and row.destroyed_at is not None
    with pytest.raises(TenantKeyDestroyed, match="never be read again"):
        store_for(acme)
    with pytest.raises(KeyManagementError):
        create_tenant_key(acme)  # no fresh key under the old packs, ever
    with pytest.raises(TenantKeyDestroyed):
        store_for(acme)


@pytest.mark.django_db
def test_master_key_from_the_environment_is_required_to_unwrap(
    store_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailvault.archive.store import store_for
    from mailvault.tenancy.models import Tenant

    monkeypatch.setenv("MAILVAULT_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    acme = Tenant.objects.create(name="acme")
    with store_for(acme) as store:
        ref = store.put(b"Subject: env key\r\n\r\n.\r\n")
        assert store.has(ref.sha256)
    assert not (store_settings / "var" / "master.key").exists()
    monkeypatch.setenv("MAILVAULT_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyUnwrapError):
        store_for(acme)


@pytest.mark.django_db
def test_verify_command_reports_and_fails_on_a_mismatch(store_settings: Path) -> None:
    from django.core.management import CommandError, call_command

    from mailvault.archive.store import store_for
    from mailvault.tenancy.models import Tenant

    acme = Tenant.objects.create(name="acme")
    with store_for(acme) as store:
        refs = [store.put(f"Subject: {i}\r\n\r\n{'word ' * 300}\r\n".encode()) for i in range(6)]
        location = store.location(refs[3].sha256)
        root = store.root
    assert location is not None
    out = io.StringIO()
    call_command("verify", tenant="acme", stdout=out)
    assert "messages rebuilt and verified: 6" in out.getvalue()
    assert "mismatches: 0" in out.getvalue()

    _flip(root / "packs" / f"{location.pack:08d}.pack", location.offset + location.length - 30)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 mismatch"):
        call_command("verify", tenant="acme", stdout=out)
    assert (
        f"pack {location.pack} offset {location.offset}: message {refs[3].sha256}" in out.getvalue()
    )
    with pytest.raises(CommandError, match="no tenant"):
        call_command("verify", tenant="nobody")
