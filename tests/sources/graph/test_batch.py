"""``$batch`` in the Graph connector against the emulator over HTTPS: answers in order,
bodies of ``$value`` as bytes, throttled sub-requests sent again after their own
Retry-After, a batch holding all four slots of its mailbox (the emulator never sees a
fifth request), and the client's own pacing under Graph's rate limits."""

from __future__ import annotations

import base64
import threading
import time

from m365_emulator.testing import EmulatorHandle
from mailvault.sources.graph import GraphClient, GraphSettings
from mailvault.sources.graph.client import _Window
from mailvault.sources.graph.mailbox import MailboxReader


def _box_with_messages(m365: EmulatorHandle, graph: GraphClient, raws: list[bytes]) -> str:
    user = m365.control(
        "POST",
        "users",
        {"mail": f"batch{time.time_ns()}@contoso.com", "mailbox": True, "emptyMailbox": True},
    )
    m365.control(
        "POST",
        f"mailboxes/{user['id']}/bulk",
        {"folder": "inbox", "raw_base64": [base64.b64encode(r).decode() for r in raws]},
    )
    return str(user["id"])


def _inbox_ids(reader: MailboxReader) -> list[str]:
    inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
    return [r.id for r in reader.changes(inbox.id).added]


def test_mime_by_batch_in_order_with_throttled_sub_requests_retried(m365: EmulatorHandle):
    raws = [
        f"Subject: batch {n}\r\nMessage-ID: <b{n}@x>\r\n\r\nbody {n}\r\n".encode()
        for n in range(45)
    ]
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        user_id = _box_with_messages(m365, graph, raws)
        reader = MailboxReader(graph, user_id)
        ids = _inbox_ids(reader)
        assert len(ids) == 45
        m365.set_faults(throttle_next=3, path_filter="$value", retry_after="0.2")
        before = graph.stats.requests
        started = time.monotonic()
        fetched = list(reader.mime_many(ids))
        assert time.monotonic() - started >= 0.2  # the sub-requests' Retry-After was honoured
        assert [mid for mid, _, _ in fetched] == ids
        assert sorted(raw for _, raw, _ in fetched if raw is not None) == sorted(raws)
        assert graph.stats.throttled == 3
        # 45 messages: three batches, and one more for the three throttled ones.
        assert graph.stats.requests - before == 4
        assert graph.stats.batched == 48


def test_a_batch_holds_all_four_slots_of_its_mailbox(m365: EmulatorHandle):
    raws = [f"Subject: slot {n}\r\n\r\nx\r\n".encode() for n in range(40)]
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        user_id = _box_with_messages(m365, graph, raws)
        reader = MailboxReader(graph, user_id)
        ids = _inbox_ids(reader)
        m365.reset_faults()  # counters from zero
        m365.set_faults(slow_ms=40, retry_after="5")
        errors: list[Exception] = []

        def singles() -> None:
            try:
                for _ in range(6):
                    graph.request("GET", f"/users/{user_id}/mailboxSettings", mailbox=user_id)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=singles) for _ in range(3)]
        for t in threads:
            t.start()
        fetched = list(reader.mime_many(ids))
        for t in threads:
            t.join()
        assert not errors and all(raw for _, raw, _ in fetched)
        stats = m365.control("GET", "faults")["stats"]
        # The emulator runs four sub-requests at once: a single request beside the batch
        # would have been a fifth (429). None came back.
        assert stats["max_mailbox_concurrency"] == 4
        assert graph.stats.throttled == 0
        assert not any(k.startswith("throttled_") for k in stats)


def test_a_batch_with_a_missing_message_reports_it_and_returns_the_others(
    m365: EmulatorHandle,
):
    raws = [b"Subject: stays\r\n\r\nx\r\n", b"Subject: goes\r\n\r\ny\r\n"]
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        user_id = _box_with_messages(m365, graph, raws)
        reader = MailboxReader(graph, user_id)
        ids = _inbox_ids(reader)
        reader.delete(ids[1], permanently=True)
        results = {mid: (raw, why) for mid, raw, why in reader.mime_many(ids)}
        assert results[ids[0]][0] in raws and results[ids[0]][1] == ""
        assert results[ids[1]][0] is None and "404 ErrorItemNotFound" in results[ids[1]][1]


def test_the_window_paces_requests_under_a_limit() -> None:
    window = _Window(limit=10, seconds=0.5, width=0.05)
    started = time.monotonic()
    for _ in range(25):
        window.take(1)
    # 25 requests at most 10 per half second: the last ones wait for two windows to pass.
    assert time.monotonic() - started >= 0.9
