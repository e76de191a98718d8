"""Graph directory over HTTPS: users/groups paging, transitiveMembers, domains, delta."""

from __future__ import annotations

from typing import Any

from m365_emulator.testing import EmulatorHandle

SELECT = (
    "id,userPrincipalName,mail,displayName,accountEnabled,proxyAddresses,userType,assignedLicenses"
)


def _all(
    m365: EmulatorHandle, path: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    items, pages = [], 0
    response = m365.graph("GET", path, **kwargs)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        pages += 1
        if "@odata.nextLink" not in body:
            return items, pages, body
        assert body["@odata.nextLink"].startswith(m365.graph_url)
        response = m365.graph("GET", body["@odata.nextLink"], **kwargs)


def test_users_page_by_next_link_with_select(m365: EmulatorHandle) -> None:
    users, pages, _ = _all(m365, f"/users?$top=7&$select={SELECT}")
    assert pages >= 4
    ids = [u["id"] for u in users]
    assert len(ids) == len(set(ids)) == m365.control("GET", "info")["users"]
    lay = next(u for u in users if u["userPrincipalName"] == "kenneth.lay@enron.com")
    assert set(lay) == set(SELECT.split(","))
    assert "SMTP:kenneth.lay@enron.com" in lay["proxyAddresses"]
    assert lay["assignedLicenses"][0]["skuId"]
    assert any(u["userType"] == "Guest" for u in users)
    assert any(u["accountEnabled"] is False for u in users)
    too_big = m365.graph("GET", "/users?$top=1000")
    assert too_big.status_code == 400
    assert (
        too_big.json()["error"]["message"]
        == "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    )
    unknown = m365.graph("GET", "/users?$select=id,shoeSize")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "Request_BadRequest"


def test_advanced_filter_needs_consistency_level(m365: EmulatorHandle) -> None:
    plain = m365.graph("GET", "/users?$filter=endswith(mail,'@enron.com')")
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "Request_UnsupportedQuery"
    advanced = m365.graph(
        "GET",
        "/users?$filter=endswith(mail,'@enron.com')&$count=true",
        headers={"ConsistencyLevel": "eventual"},
    )
    body = advanced.json()
    assert body["@odata.count"] == len(body["value"]) > 5
    assert all(u["mail"].endswith("@enron.com") for u in body["value"])
    guests = m365.graph("GET", "/users?$filter=userType eq 'Guest'").json()["value"]
    assert len(guests) == 2


def test_groups_members_and_transitive_members_over_nested_groups(m365: EmulatorHandle) -> None:
    groups, _, _ = _all(m365, "/groups?$top=2")
    by_name = {g["displayName"]: g for g in groups}
    readers = by_name["Mailvault Readers"]
    direct, _, _ = _all(m365, f"/groups/{readers['id']}/members?$top=2")
    kinds = {m["@odata.type"] for m in direct}
    assert kinds == {"#microsoft.graph.user", "#microsoft.graph.group"}
    everyone, _, _ = _all(m365, f"/groups/{readers['id']}/transitiveMembers?$select=id,displayName")
    ids = {m["id"] for m in everyone}
    assert by_name["Leadership"]["id"] in ids and by_name["Executive Committee"]["id"] in ids
    committee, _, _ = _all(m365, f"/groups/{by_name['Executive Committee']['id']}/members")
    assert {m["id"] for m in committee} <= ids
    assert "kenneth.lay@enron.com" in {m.get("userPrincipalName") for m in committee}
    assert len(ids) == len(everyone)
    trading = by_name["Trading Desk"]
    assert trading["mailEnabled"] is True and trading["securityEnabled"] is False
    assert "Unified" in by_name["All Employees"]["groupTypes"]


def test_domains_and_mailbox_detection(m365: EmulatorHandle) -> None:
    domains = m365.graph("GET", "/domains").json()["value"]
    assert {d["id"]: d["isDefault"] for d in domains}["enron.com"] is True
    assert any(d["isInitial"] for d in domains) and any(not d["isVerified"] for d in domains)
    users = m365.graph("GET", "/users?$select=id,userPrincipalName,userType&$top=999").json()[
        "value"
    ]
    lay = next(u for u in users if u["userPrincipalName"] == "kenneth.lay@enron.com")
    plain = next(u for u in users if u["userPrincipalName"] == "rosalee.fleming@enron.com")
    guest = next(u for u in users if u["userType"] == "Guest")
    assert m365.graph("GET", f"/users/{lay['id']}/mailboxSettings").status_code == 200
    for nobody in (plain, guest):
        response = m365.graph("GET", f"/users/{nobody['id']}/mailboxSettings")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


def test_users_delta_then_a_change_then_only_the_change_then_410(m365: EmulatorHandle) -> None:
    initial, pages, last = _all(
        m365,
        "/users/delta?$select=id,displayName,accountEnabled",
        headers={"Prefer": "odata.maxpagesize=10"},
    )
    assert pages >= 3 and "@odata.deltaLink" in last
    assert len({u["id"] for u in initial}) == m365.control("GET", "info")["users"]
    delta_link = last["@odata.deltaLink"]
    empty = m365.graph("GET", delta_link).json()
    assert empty["value"] == []
    created = m365.control(
        "POST", "users", {"mail": "new.hire@enron.com", "displayName": "New Hire"}
    )
    skilling = next(u for u in initial if u["displayName"] == "Neil Bresnan")
    m365.control("PATCH", f"users/{skilling['id']}", {"accountEnabled": False})
    gone = next(u for u in initial if u["displayName"] == "Paul Choi")
    m365.control("DELETE", f"users/{gone['id']}")
    changes = m365.graph("GET", empty["@odata.deltaLink"]).json()
    by_id = {c["id"]: c for c in changes["value"]}
    assert set(by_id) == {created["id"], skilling["id"], gone["id"]}
    assert by_id[skilling["id"]]["accountEnabled"] is False
    assert set(by_id[skilling["id"]]) == {"id", "displayName", "accountEnabled"}
    assert by_id[gone["id"]]["@removed"] == {"reason": "changed"}
    m365.reset_delta()
    reset = m365.graph("GET", changes["@odata.deltaLink"])
    assert reset.status_code == 410
    assert reset.headers["location"].startswith(f"{m365.graph_url}/users/delta")


def test_groups_delta_reports_member_changes(m365: EmulatorHandle) -> None:
    _, _, last = _all(m365, "/groups/delta?$select=displayName,members")
    first = m365.graph("GET", "/groups/delta?$select=displayName,members").json()["value"]
    committee = next(g for g in first if g["displayName"] == "Executive Committee")
    assert len(committee["members@delta"]) == 3
    member = committee["members@delta"][0]["id"]
    m365.control("DELETE", f"groups/{committee['id']}/members/{member}")
    changes = m365.graph("GET", last["@odata.deltaLink"]).json()["value"]
    assert [c["id"] for c in changes] == [committee["id"]]
    assert changes[0]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": member, "@removed": {"reason": "deleted"}}
    ]
    latest = m365.graph("GET", "/groups/delta?$deltatoken=latest").json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest


def test_graph_refuses_missing_roles_and_bad_tokens(m365: EmulatorHandle) -> None:
    with m365.http() as client:
        anonymous = client.get(f"{m365.graph_url}/users")
        assert (
            anonymous.status_code == 401
            and anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
        )
        assert "www-authenticate" in anonymous.headers
    m365.set_faults(roles=["Mail.ReadWrite"])
    m365.expire_tokens()
    denied = m365.graph("GET", "/users")
    assert (
        denied.status_code == 403
        and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    )
    token = m365.app_token()
    m365.expire_tokens()
    stale = m365.graph("GET", "/users", headers={"Authorization": f"Bearer {token}"})
    assert stale.status_code == 401
    assert stale.json()["error"]["message"] == "Access token has expired or is not yet valid."
