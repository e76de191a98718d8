"""Deterministic seeding (corpus and generated), a large generated tenant served fast, and
the real ``m365-emulator`` command."""

from __future__ import annotations

import time

from m365_emulator.fixture import FixtureOptions, build
from m365_emulator.state import Tenant
from m365_emulator.testing import EmulatorHandle, running_emulator


def _fingerprint(tenant: Tenant) -> tuple[object, ...]:
    mailbox_user = next(u for u in sorted(tenant.users) if tenant.users[u].has_mailbox)
    box = tenant.mailbox(mailbox_user)
    assert box is not None
    return (
        tenant.id,
        sorted(tenant.users),
        sorted(tenant.groups),
        sorted(box.folders),
        sorted(box.messages),
        sorted(m.rest_id for m in box.messages.values()),
        tenant.apps.keys(),
    )


def test_same_seed_same_ids_for_both_fixtures() -> None:
    for kind in ("generated", "corpus"):
        first = build(
            FixtureOptions(kind=kind, seed="alpha", users=60, groups=12, max_per_folder=5)
        )
        again = build(
            FixtureOptions(kind=kind, seed="alpha", users=60, groups=12, max_per_folder=5)
        )
        other = build(FixtureOptions(kind=kind, seed="beta", users=60, groups=12, max_per_folder=5))
        assert _fingerprint(first) == _fingerprint(again)
        assert _fingerprint(first)[1] != _fingerprint(other)[1]


def test_generated_tenant_has_the_corpus_shape() -> None:
    tenant = build(FixtureOptions(kind="generated", users=200, groups=30))
    users = list(tenant.users.values())
    assert any(u.user_type == "Guest" for u in users)
    assert any(not u.account_enabled for u in users)
    assert any(u.user_type == "Member" and not u.has_mailbox and u.mail for u in users)
    assert len(tenant.groups) == 30
    nested = [g for g in tenant.groups.values() if any(m in tenant.groups for m in g.members)]
    assert len(nested) >= 3
    box = tenant.mailbox(next(u.id for u in users if u.has_mailbox))
    assert box is not None and len(box.messages) == 8
    used = {box.folders[m.folder_id].display_name for m in box.messages.values()}
    assert {"Inbox", "Sent Items", "Projects"} == used


def test_a_10000_user_tenant_builds_quickly_and_pages_fast() -> None:
    started = time.monotonic()
    with running_emulator(fixture="generated", users=10_000, groups=2_000) as m365:
        built = time.monotonic() - started
        assert built < 20
        pages, count, url = (
            0,
            0,
            "/users?$top=999&$select=id,userPrincipalName,mail,accountEnabled,proxyAddresses,userType,assignedLicenses",
        )
        started = time.monotonic()
        while url:
            body = m365.graph("GET", url).json()
            count += len(body["value"])
            pages += 1
            url = body.get("@odata.nextLink", "")
        assert count == 10_001 and pages == 11
        assert time.monotonic() - started < 10
        groups = m365.graph(
            "GET",
            "/groups/delta?$select=displayName,members",
            headers={"Prefer": "odata.maxpagesize=999"},
        ).json()
        assert len(groups["value"]) == 999 and "@odata.nextLink" in groups


def test_the_command_serves_https_in_its_own_process() -> None:
    with running_emulator(
        fixture="generated", users=30, groups=8, subprocess=True, seed="proc"
    ) as m365:
        assert m365.emulator is None
        assert m365.graph("GET", "/users?$top=1").status_code == 200
        assert (m365.state_dir / "tls" / "ca.pem").is_file()


def test_reset_state_rebuilds_the_seeded_tenant(m365: EmulatorHandle) -> None:
    link = m365.graph("GET", "/users/delta?$deltatoken=latest").json()["@odata.deltaLink"]
    created = m365.control("POST", "users", {"mail": "temp.worker@enron.com"})
    assert m365.graph("GET", f"/users/{created['id']}").status_code == 200
    m365.reset_state()
    assert m365.graph("GET", f"/users/{created['id']}").status_code == 404
    assert m365.graph("GET", "/users/kenneth.lay@enron.com").status_code == 200
    assert m365.graph("GET", link).status_code == 410
