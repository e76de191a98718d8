"""The fast IMAP archiving path against a real Dovecot: fetching ahead in a thread,
FETCH batches bounded in bytes, prepare workers with overlapped batches, and a resumed
run after one that died before saving its state."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from factories import TenantWorld
from mailvault.archive.models import Message, Placement
from mailvault.jobs.models import JobRun
from mailvault.sources.imap import FolderState, ImapSession
from mailvault.sources.imap.prefetch import Batch, FolderDone, Prefetcher
from mailvault.sources.imap.sync import FETCH_ITEMS
from mailvault.sources.imap.wire import fetch_bodies
from mailvault.sources.models_profiles import FolderSyncState
from mailvault.sources.profiles import services
from mailvault.tenancy.context import tenant_context
from sources.profile_helpers import Account, make_profile, run_profile

pytestmark = pytest.mark.django_db


def refs(world: TenantWorld) -> list[str]:
    with tenant_context(world.tenant):
        return sorted(
            Placement.objects.filter(
                mailbox=world.mailbox, source_ref__startswith="imap:"
            ).values_list("source_ref", flat=True)
        )


def test_prepare_workers_and_batches_in_flight_archive_everything_once(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two forked prepare workers: a batch is recorded while the next is prepared and
    the next after it fetched; each folder's state is saved only up to what is recorded."""
    monkeypatch.setattr("mailvault.sources.profiles.job.INGEST_WORKERS", 2)
    monkeypatch.setattr("mailvault.sources.profiles.job.BATCH_SIZE", 3)
    monkeypatch.setattr("mailvault.sources.profiles.job.STATE_SAVE_INTERVAL_S", 0.0)
    account.imap.create_folder("Work")
    for n in range(8):
        account.append("INBOX", f"inbox {n}")
    for n in range(4):
        account.append("Work", f"work {n}")
    profile = make_profile(tenant_a, account)

    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("12 messages fetched: 12 filed" in line for line in log), log
    found = refs(tenant_a)
    assert len(found) == len(set(found)) == 12
    with tenant_context(tenant_a.tenant):
        imap = Message.objects.filter(source=Message.Source.IMAP)
        assert imap.count() == imap.filter(indexed=True).count() == 12
        states = {
            s.folder: s
            for s in FolderSyncState.objects.filter(profile=profile, folder__in=["Inbox", "Work"])
        }
        assert (states["Inbox"].last_uid, states["Inbox"].message_count) == (8, 8)
        assert (states["Work"].last_uid, states["Work"].message_count) == (4, 4)
        assert states["Inbox"].highest_modseq is not None

    account.append("Work", "work 4")
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any("1 messages fetched: 1 filed" in line for line in log), log
    assert len(refs(tenant_a)) == 13


def test_a_run_that_died_before_saving_its_state_skips_what_it_filed(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailvault.sources.profiles.job.BATCH_SIZE", 2)
    for n in range(6):
        account.append("INBOX", f"m {n}")
    profile = make_profile(tenant_a, account)
    run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    with tenant_context(tenant_a.tenant):  # as if it had died before saving anything
        FolderSyncState.objects.filter(profile=profile).update(last_uid=0, highest_modseq=None)
    for n in range(6, 10):
        account.append("INBOX", f"m {n}")

    with CaptureQueriesContext(connection) as queries:
        run, log = run_profile(tenant_a, profile)
    assert run.status == JobRun.Status.FINISHED, log
    assert any(
        "10 messages fetched: 4 filed" in line and "6 already archived" in line for line in log
    ), log
    found = refs(tenant_a)
    assert len(found) == len(set(found)) == 10
    # Filed refs are looked up until a batch has one that is not filed: batches
    # (1,2) (3,4) (5,6) (7,8), and none for (9,10).
    lookups = [q for q in queries.captured_queries if '"source_ref" IN' in q["sql"]]
    assert len(lookups) == 4, [q["sql"][:120] for q in lookups]


def test_fetch_batches_are_bounded_in_bytes(tenant_a: TenantWorld, account: Account) -> None:
    sent = [
        account.append("INBOX", "small 1"),
        account.append("INBOX", "small 2"),
        account.append("INBOX", "big", body="x" * 5000),
        account.append("INBOX", "small 3"),
        account.append("INBOX", "small 4"),
    ]
    assert all(len(raw) < 400 for raw in sent[:2] + sent[3:]) and len(sent[2]) > 5000
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    with ImapSession(settings) as session:
        (inbox,) = session.folders(include=["Inbox"], exclude=[], skip_junk_trash=True)
        state = FolderState()
        batches = list(session.new_messages(inbox, state, batch_size=10, max_bytes=1000))
    assert [[m.uid for m in b] for b in batches] == [[1, 2], [3], [4, 5]]
    assert [b.up_to for b in batches] == [2, 3, 5]
    assert [m.raw for b in batches for m in b] == sent
    assert state.last_uid == 5


def test_prefetcher_stops_early_and_gives_the_session_back(
    tenant_a: TenantWorld, account: Account
) -> None:
    for n in range(6):
        account.append("INBOX", f"p {n}")
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    with ImapSession(settings) as session:
        (inbox,) = session.folders(include=["Inbox"], exclude=[], skip_junk_trash=True)
        start = FolderState()
        with Prefetcher(session, [(inbox, start)], batch_size=1, depth=1) as prefetcher:
            events = iter(prefetcher)
            first = next(events)
            assert isinstance(first, Batch) and [m.uid for m in first.messages] == [1]
        assert not prefetcher._thread.is_alive()  # stopped while waiting for room
        assert start == FolderState()  # the caller's state is not touched
        # The session is usable again, and a full pass ends with the folder's state.
        with Prefetcher(session, [(inbox, start)], batch_size=4) as prefetcher:
            events_all = list(prefetcher)
    batches = [e for e in events_all if isinstance(e, Batch)]
    assert [[m.uid for m in b.messages] for b in batches] == [[1, 2, 3, 4], [5, 6]]
    done = events_all[-1]
    assert isinstance(done, FolderDone) and done.state.last_uid == 6


def test_big_messages_are_fetched_in_pieces(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over PIECE_BYTES a message is fetched with BODY.PEEK[]<offset.size> and joined;
    its flags come with the first piece. One is an exact multiple of the piece size."""
    monkeypatch.setattr("mailvault.sources.imap.sync.PIECE_BYTES", 500)

    def message(subject: str, size: int) -> bytes:
        head = f"From: a@example.com\r\nSubject: {subject}\r\n\r\n".encode()
        lines = b"0123456789" * 7 + b"\r\n"  # 72 bytes a line
        body = (lines * (size // len(lines) + 1))[: size - len(head) - 2] + b"\r\n"
        return head + body

    sent = [message("small", 300), message("odd", 2222), message("exact", 1500)]
    assert [len(raw) for raw in sent] == [300, 2222, 1500]
    account.imap.append("INBOX", sent[0])
    account.imap.append("INBOX", sent[1], flags=(b"\\Flagged",))
    account.imap.append("INBOX", sent[2])
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    pieces: list[bytes] = []
    with ImapSession(settings) as session:
        (inbox,) = session.folders(include=["Inbox"], exclude=[], skip_junk_trash=True)
        fetch = session.client.fetch

        def spy(uids: list[int], items: list[bytes]) -> object:
            pieces.extend(i for i in items if i.startswith(b"BODY.PEEK[]<"))
            return fetch(uids, items)

        monkeypatch.setattr(session.client, "fetch", spy)
        batches = list(session.new_messages(inbox, FolderState(), batch_size=10, max_bytes=400))
    assert [[m.uid for m in b] for b in batches] == [[1], [2], [3]]
    # 2,222 bytes: 5 pieces; 1,500: 3 full pieces and an empty answer at the end.
    assert len(pieces) == 5 + 4, pieces
    assert [m.raw for b in batches for m in b] == sent
    assert [m.flagged for b in batches for m in b] == [False, True, False]


def test_fetch_answers_read_as_imapclient_reads_them(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick reading of FETCH answers gives what imapclient's parser gives (and
    Dovecot's answers never need that parser)."""

    def general_parser(*args: object) -> None:
        raise AssertionError("the general parser was used")

    account.append("INBOX", "plain")
    account.append("INBOX", "tricky", body="a ) line\r\nBODY[] {12}\r\n)", flags=(b"\\Flagged",))
    account.imap.append("INBOX", b"Subject: keyword\r\n\r\nx\r\n", flags=(b"\\Seen", b"$Work"))
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    with ImapSession(settings) as session:
        session.client.select_folder("INBOX", readonly=True)
        with monkeypatch.context() as patch:
            patch.setattr("mailvault.sources.imap.wire.parse_fetch_response", general_parser)
            quick = fetch_bodies(session.client, [1, 2, 3, 99])
        general = session.client.fetch([1, 2, 3], FETCH_ITEMS)
    assert sorted(quick) == [1, 2, 3]
    for uid in (1, 2, 3):
        assert quick[uid][b"BODY[]"] == general[uid][b"BODY[]"]
        assert set(quick[uid][b"FLAGS"]) == set(general[uid][b"FLAGS"])
    assert {b"\\Seen", b"$Work"} <= set(quick[3][b"FLAGS"])


def test_a_big_folder_is_searched_a_window_of_uids_at_a_time(
    tenant_a: TenantWorld, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEARCH answers stay under imaplib's 1 MB line limit (about 150,000 UIDs): the UIDs
    are asked for in windows up to UIDNEXT, the last one open-ended."""
    monkeypatch.setattr("mailvault.sources.imap.sync.SEARCH_WINDOW", 2)
    for n in range(5):
        account.append("INBOX", f"w {n}")
    account.imap.select_folder("INBOX")
    account.imap.delete_messages([2])  # a gap in the UIDs
    account.imap.expunge()
    account.imap.unselect_folder()
    profile = make_profile(tenant_a, account)
    with tenant_context(tenant_a.tenant):
        settings = services.connection_settings(profile)
    searches: list[object] = []
    with ImapSession(settings) as session:
        (inbox,) = session.folders(include=["Inbox"], exclude=[], skip_junk_trash=True)
        search = session.client.search

        def spy(criteria: list[object]) -> object:
            searches.append(criteria[1])
            return search(criteria)

        monkeypatch.setattr(session.client, "search", spy)
        state = FolderState()
        batches = list(session.new_messages(inbox, state, batch_size=10))
        assert [m.uid for b in batches for m in b] == [1, 3, 4, 5]
        assert searches == ["1:2", "3:4", "5:*"]
        # Nothing new: UIDNEXT says so without a SEARCH; a new message is found after 5.
        searches.clear()
        assert list(session.new_messages(inbox, state, batch_size=10)) == []
        account.append("INBOX", "w 5")
        batches = list(session.new_messages(inbox, state, batch_size=10))
    assert [m.uid for b in batches for m in b] == [6]
    assert searches == ["6:*"]
