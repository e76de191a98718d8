"""The control API's bulk load (benchmarks put thousands of messages into a mailbox at
once) and the throttle's high-water marks a benchmark checks the limits against."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from m365_emulator.testing import EmulatorHandle

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def _empty_user(m365: EmulatorHandle) -> str:
    user = m365.control(
        "POST",
        "users",
        {"mail": f"bulk{time.time_ns()}@enron.com", "mailbox": True, "emptyMailbox": True},
    )
    return str(user["id"])


def test_bulk_load_into_a_new_child_folder_reads_back_byte_exact(m365: EmulatorHandle) -> None:
    user_id = _empty_user(m365)
    raws = [
        f"From: a@example.org\r\nSubject: bulk {n}\r\nMessage-ID: <bulk{n}@x>\r\n\r\n"
        f"line {n}\r\n".encode()
        for n in range(30)
    ]
    inbox = m365.graph("GET", f"/users/{user_id}/mailFolders/inbox").json()
    assert inbox["totalItemCount"] == 0  # an empty mailbox: no fixture mail
    loaded = m365.control(
        "POST",
        f"mailboxes/{user_id}/bulk",
        {
            "folder": "inbox",
            "path": "Lists/R-help",
            "raw_base64": [base64.b64encode(r).decode() for r in raws],
        },
    )
    assert loaded["count"] == 30
    again = m365.control(
        "POST",
        f"mailboxes/{user_id}/bulk",
        {"folder": "inbox", "path": "lists/r-help", "raw_base64": []},
    )
    assert again["folderId"] == loaded["folderId"]  # found again, case-insensitively
    folder = m365.graph("GET", f"/users/{user_id}/mailFolders/{loaded['folderId']}").json()
    assert folder["displayName"] == "R-help" and folder["totalItemCount"] == 30
    lists = m365.graph("GET", f"/users/{user_id}/mailFolders/inbox/childFolders").json()
    assert [f["displayName"] for f in lists["value"]] == ["Lists"]
    delta = m365.graph(
        "GET",
        f"/users/{user_id}/mailFolders/{loaded['folderId']}/messages/delta"
        "?$select=internetMessageId",
        headers={**IMMUTABLE, "Prefer": 'IdType="ImmutableId", odata.maxpagesize=100'},
    ).json()
    ids = {m["internetMessageId"]: m["id"] for m in delta["value"]}
    assert len(ids) == 30
    value = m365.graph("GET", f"/users/{user_id}/messages/{ids['<bulk7@x>']}/$value")
    assert value.content == raws[7]


def test_bulk_load_refuses_bad_input(m365: EmulatorHandle) -> None:
    user_id = _empty_user(m365)
    with pytest.raises(httpx.HTTPStatusError) as bad:
        m365.control("POST", f"mailboxes/{user_id}/bulk", {"raw_base64": ["not base64!"]})
    assert bad.value.response.status_code == 400
    with pytest.raises(httpx.HTTPStatusError) as folder:
        m365.control("POST", f"mailboxes/{user_id}/bulk", {"folder": "nope", "raw_base64": []})
    assert folder.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as nobody:
        m365.control("POST", "mailboxes/no-such-user/bulk", {"raw_base64": []})
    assert nobody.value.response.status_code == 404


def test_stats_keep_the_highest_concurrency_and_window_per_mailbox(m365: EmulatorHandle) -> None:
    user_id = _empty_user(m365)
    m365.reset_faults()
    m365.set_faults(slow_ms=400)
    token = m365.app_token()
    url = f"{m365.graph_url}/users/{user_id}/mailFolders/inbox"
    with m365.http() as client, ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(
            pool.map(
                lambda _: client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code,
                range(3),
            )
        )
    assert statuses == [200, 200, 200]
    stats = m365.control("GET", "faults")["stats"]
    assert stats["max_mailbox_concurrency"] == 3
    assert stats["max_mailbox_window"] == 3
