"""Graph mail over HTTPS: folders, per-folder delta, $value, move/delete, $batch."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path
from typing import Any

from m365_emulator.fixture import corpus_path, unpacked_corpus
from m365_emulator.testing import EmulatorHandle

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def _user_id(m365: EmulatorHandle, upn: str) -> str:
    return str(m365.graph("GET", f"/users/{upn}?$select=id").json()["id"])


def _pages(
    m365: EmulatorHandle, url: str, headers: dict[str, str]
) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        response = m365.graph("GET", url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_folders_top_level_hidden_search_and_child_folders(m365: EmulatorHandle) -> None:
    lay = _user_id(m365, "kenneth.lay@enron.com")
    top = m365.graph("GET", f"/users/{lay}/mailFolders?$top=50").json()["value"]
    names = {f["displayName"] for f in top}
    assert {"Inbox", "Sent Items", "Deleted Items", "Drafts", "Archive"} <= names
    assert "Yammer Root" not in names
    assert any(f.get("@odata.type") == "#microsoft.graph.mailSearchFolder" for f in top)
    hidden = m365.graph(
        "GET", f"/users/{lay}/mailFolders?$top=50&includeHiddenFolders=true"
    ).json()["value"]
    assert "Yammer Root" in {f["displayName"] for f in hidden}
    inbox = m365.graph("GET", f"/users/{lay}/mailFolders/inbox").json()
    assert inbox["displayName"] == "Inbox" and inbox["childFolderCount"] == 2
    children = m365.graph("GET", f"/users/{lay}/mailFolders/{inbox['id']}/childFolders").json()[
        "value"
    ]
    enron = next(f for f in children if f["displayName"] == "Enron")
    grandchildren = m365.graph(
        "GET", f"/users/{lay}/mailFolders/{enron['id']}/childFolders"
    ).json()["value"]
    assert "Family" in {f["displayName"] for f in grandchildren}
    assert all(f["parentFolderId"] == enron["id"] for f in grandchildren)
    folders, _ = _pages(m365, f"/users/{lay}/mailFolders/delta", {})
    assert {"Family", "Inbox", "Enron"} <= {f["displayName"] for f in folders}


def test_value_returns_the_exact_bytes_of_the_corpus_message(m365: EmulatorHandle) -> None:
    root = unpacked_corpus(corpus_path()) / "cmu-layout" / "skilling-j" / "inbox"
    first = min(
        (p for p in root.iterdir() if p.name.rstrip(".").isdigit()),
        key=lambda p: int(p.name.rstrip(".")),
    )
    original = Path(first).read_bytes()
    wanted = str(message_from_bytes(original)["Message-ID"]).strip()
    skilling = _user_id(m365, "jeff.skilling@enron.com")
    items, _ = _pages(
        m365,
        f"/users/{skilling}/mailFolders/inbox/messages/delta?$select=internetMessageId,subject",
        {"Prefer": "odata.maxpagesize=50"},
    )
    match = next(i for i in items if i["internetMessageId"] == wanted)
    raw = m365.graph("GET", f"/users/{skilling}/messages/{match['id']}/$value")
    assert raw.status_code == 200 and raw.content == original


def test_messages_delta_per_folder_sees_moves_and_deletes(m365: EmulatorHandle) -> None:
    rapp = _user_id(m365, "bill.rapp@enron.com")
    headers = {"Prefer": 'odata.maxpagesize=7, IdType="ImmutableId"'}
    select = "$select=internetMessageId,receivedDateTime,subject,parentFolderId"
    inbox, inbox_link = _pages(
        m365, f"/users/{rapp}/mailFolders/inbox/messages/delta?{select}", headers
    )
    _deleted, deleted_link = _pages(
        m365, f"/users/{rapp}/mailFolders/deleteditems/messages/delta?{select}", headers
    )
    assert (
        len(inbox)
        == m365.graph("GET", f"/users/{rapp}/mailFolders/inbox").json()["totalItemCount"]
        > 7
    )
    assert all(i["@odata.type"] == "#microsoft.graph.message" for i in inbox)
    moved, removed = inbox[0]["id"], inbox[1]["id"]
    answer = m365.graph(
        "POST",
        f"/users/{rapp}/messages/{moved}/move",
        json={"destinationId": "deleteditems"},
        headers=IMMUTABLE,
    )
    assert (
        answer.status_code == 201 and answer.json()["id"] == moved
    )  # immutable id survives the move
    assert (
        m365.graph("POST", f"/users/{rapp}/messages/{removed}/permanentDelete").status_code == 204
    )
    inbox_changes, _ = _pages(m365, inbox_link, headers)
    assert {c["id"]: c.get("@removed") for c in inbox_changes} == {
        moved: {"reason": "deleted"},
        removed: {"reason": "deleted"},
    }
    deleted_changes, _ = _pages(m365, deleted_link, headers)
    assert [c["id"] for c in deleted_changes] == [moved]
    assert (
        deleted_changes[0]["parentFolderId"]
        == m365.graph("GET", f"/users/{rapp}/mailFolders/deleteditems").json()["id"]
    )
    assert m365.graph("GET", f"/users/{rapp}/messages/{removed}").status_code == 404
    m365.set_faults(delta_reset=True)
    gone = m365.graph("GET", inbox_link, headers=headers)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"


def test_move_changes_rest_ids_and_delete_goes_to_deleted_items(m365: EmulatorHandle) -> None:
    carson = _user_id(m365, "mike.carson@enron.com")
    listing = m365.graph(
        "GET", f"/users/{carson}/mailFolders/inbox/messages?$top=3&$select=subject"
    ).json()
    assert len(listing["value"]) == 3 and "@odata.nextLink" in listing
    first, second = listing["value"][0]["id"], listing["value"][1]["id"]
    moved = m365.graph(
        "POST", f"/users/{carson}/messages/{first}/move", json={"destinationId": "archive"}
    )
    assert moved.status_code == 201 and moved.json()["id"] != first
    stale = m365.graph("GET", f"/users/{carson}/messages/{first}")
    assert stale.status_code == 404 and stale.json()["error"]["code"] == "ErrorItemNotFound"
    assert m365.graph("GET", f"/users/{carson}/messages/{moved.json()['id']}").status_code == 200
    assert m365.graph("DELETE", f"/users/{carson}/messages/{second}").status_code == 204
    trash = m365.graph(
        "GET", f"/users/{carson}/mailFolders/deleteditems/messages?$top=100&$select=subject"
    ).json()["value"]
    assert listing["value"][1]["subject"] in {m["subject"] for m in trash}


def test_batch_runs_sub_requests_with_dependencies_and_base64_bodies(m365: EmulatorHandle) -> None:
    whalley = _user_id(m365, "greg.whalley@enron.com")
    mid = m365.graph("GET", f"/users/{whalley}/mailFolders/sentitems/messages?$top=1").json()[
        "value"
    ][0]["id"]
    response = m365.graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "GET",
                    "url": f"/users/{whalley}/messages/{mid}?$select=subject",
                },
                {"id": "2", "method": "GET", "url": f"/users/{whalley}/messages/{mid}/$value"},
                {"id": "3", "method": "GET", "url": f"/users/{whalley}/messages/nope"},
                {"id": "4", "method": "GET", "url": "/domains", "dependsOn": ["3"]},
            ]
        },
    )
    assert response.status_code == 200
    by_id = {r["id"]: r for r in response.json()["responses"]}
    assert by_id["1"]["status"] == 200 and "subject" in by_id["1"]["body"]
    assert by_id["2"]["status"] == 200 and by_id["2"]["headers"]["Content-Type"] == "text/plain"
    assert by_id["3"]["status"] == 404 and by_id["4"]["status"] == 424
    too_many = m365.graph(
        "POST",
        "/$batch",
        json={"requests": [{"id": str(i), "method": "GET", "url": "/domains"} for i in range(21)]},
    )
    assert too_many.status_code == 400
    m365.set_faults(throttle_next=1, path_filter="/messages/", retry_after="3.5")
    throttled = m365.graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {"id": "a", "method": "GET", "url": f"/users/{whalley}/messages/{mid}"},
                {"id": "b", "method": "GET", "url": f"/users/{whalley}/messages/{mid}"},
            ]
        },
    ).json()["responses"]
    statuses = {r["id"]: r for r in throttled}
    assert statuses["a"]["status"] == 429 and statuses["a"]["headers"]["Retry-After"] == "3.5"
    assert statuses["b"]["status"] == 200


def test_delegated_user_reads_own_mailbox_only_with_mail_scope(m365: EmulatorHandle) -> None:
    lay = _user_id(m365, "kenneth.lay@enron.com")
    response = m365.graph("GET", f"/users/{lay}/mailFolders/inbox/messages?$top=1")
    assert response.status_code == 200
    m365.set_faults(roles=["User.Read.All"])
    m365.expire_tokens()
    denied = m365.graph("GET", f"/users/{lay}/mailFolders/inbox/messages?$top=1")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"


def test_received_date_filter_on_list_and_delta(m365: EmulatorHandle) -> None:
    guzman = _user_id(m365, "mark.guzman@enron.com")
    url = f"/users/{guzman}/mailFolders/sentitems/messages?$top=100&$select=receivedDateTime"
    dates = sorted(m["receivedDateTime"] for m in m365.graph("GET", url).json()["value"])
    middle = dates[len(dates) // 2]
    newer = m365.graph("GET", f"{url}&$filter=receivedDateTime ge {middle}").json()["value"]
    assert sorted(m["receivedDateTime"] for m in newer) == [d for d in dates if d >= middle]
    delta = (
        f"/users/{guzman}/mailFolders/sentitems/messages/delta?$filter=receivedDateTime ge {middle}"
    )
    items, _ = _pages(m365, delta, {"Prefer": "odata.maxpagesize=100"})
    assert len(items) == len(newer)
    bad = m365.graph("GET", f"{url}&$filter=subject eq 'x'")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "ErrorInvalidUrlQueryFilter"
