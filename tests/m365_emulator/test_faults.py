"""Throttling and fault switches (m365-protocol.md §4) over HTTPS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from m365_emulator.testing import EmulatorHandle


def _mailbox(m365: EmulatorHandle) -> str:
    return str(m365.graph("GET", "/users/matt.motley@enron.com?$select=id").json()["id"])


def test_throttle_next_gives_429_with_fractional_retry_after(m365: EmulatorHandle) -> None:
    m365.set_faults(throttle_next=2, retry_after="2.128")
    for _ in range(2):
        response = m365.graph("GET", "/users?$top=1")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2.128"
        error = response.json()["error"]
        assert error["code"] == "TooManyRequests" and error["innerError"]["status"] == "429"
    assert m365.graph("GET", "/users?$top=1").status_code == 200


def test_mailbox_concurrency_limit_of_four(m365: EmulatorHandle) -> None:
    box = _mailbox(m365)
    m365.set_faults(slow_ms=600)
    token = m365.app_token()
    with m365.http() as client, ThreadPoolExecutor(max_workers=7) as pool:
        url = f"{m365.graph_url}/users/{box}/mailFolders/inbox"
        results = list(
            pool.map(
                lambda _: client.get(url, headers={"Authorization": f"Bearer {token}"}), range(7)
            )
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) <= 4 and statuses.count(429) >= 3
    throttled = next(r for r in results if r.status_code == 429)
    assert throttled.json()["error"] == throttled.json()["error"] | {
        "code": "ApplicationThrottled",
        "message": "Application is over its MailboxConcurrency limit.",
    }
    assert throttled.headers["retry-after"]


def test_mailbox_request_window(m365: EmulatorHandle) -> None:
    box = _mailbox(m365)
    m365.set_faults(mailbox_limit=3, mailbox_window=30)
    answers = [m365.graph("GET", f"/users/{box}/mailFolders/inbox").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    wait = float(m365.graph("GET", f"/users/{box}/mailFolders/inbox").headers["retry-after"])
    assert 0 < wait <= 30
    assert m365.graph("GET", "/domains").status_code == 200  # not a mailbox request


def test_unavailable_dropped_connection_and_no_mailbox(m365: EmulatorHandle) -> None:
    m365.set_faults(unavailable_next=1, retry_after="1")
    unavailable = m365.graph("GET", "/domains")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "1"
    m365.set_faults(drop_next=1)
    with pytest.raises(httpx.HTTPError):
        m365.graph("GET", "/domains")
    assert m365.graph("GET", "/domains").status_code == 200
    box = _mailbox(m365)
    m365.set_faults(no_mailbox=[box])
    missing = m365.graph("GET", f"/users/{box}/mailFolders")
    assert (
        missing.status_code == 404
        and missing.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    )


def test_revoked_consent_fails_existing_tokens(m365: EmulatorHandle) -> None:
    assert m365.graph("GET", "/domains").status_code == 200
    token = m365.app_token()
    m365.set_consent(False)
    with m365.http() as client:
        response = client.get(
            f"{m365.graph_url}/domains", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401


def test_ids_change_on_move_switch(m365: EmulatorHandle) -> None:
    box = _mailbox(m365)
    prefer = {"Prefer": 'IdType="ImmutableId"'}
    first = m365.graph(
        "GET", f"/users/{box}/mailFolders/inbox/messages?$top=1", headers=prefer
    ).json()["value"][0]
    m365.set_faults(ids_change_on_move=True)
    moved = m365.graph(
        "POST",
        f"/users/{box}/messages/{first['id']}/move",
        json={"destinationId": "archive"},
        headers=prefer,
    )
    assert moved.status_code == 201 and moved.json()["id"] != first["id"]
    assert (
        m365.graph("GET", f"/users/{box}/messages/{first['id']}", headers=prefer).status_code == 404
    )


def test_faults_can_be_read_and_unknown_switches_refused(m365: EmulatorHandle) -> None:
    current = m365.control("GET", "faults")["faults"]
    assert current["mailbox_concurrency"] == 4 and current["mailbox_limit"] == 10_000
    with m365.http() as client:
        bad = client.post(f"{m365.base_url}/_emulator/api/faults", json={"no_such_switch": 1})
    assert bad.status_code == 400
