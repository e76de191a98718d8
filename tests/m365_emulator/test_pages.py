"""The emulator's admin page and the Purview journal-rule pages, through their forms."""

from __future__ import annotations

import re

from m365_emulator.testing import EmulatorHandle


def test_admin_page_overview_and_fault_switches(m365: EmulatorHandle) -> None:
    with m365.http(base_url=m365.base_url) as client:
        page = client.get("/_emulator/admin")
        assert page.status_code == 200
        assert m365.tenant_id in page.text and m365.client_secret in page.text
        assert "Throttling and fault switches" in page.text and "Send a message" in page.text
        saved = client.post(
            "/_emulator/admin/faults",
            data={
                "throttle_next": "1",
                "retry_after": "4.5",
                "delta_reset": ["true", "false"],
                "mailbox_concurrency": "2",
            },
        )
        assert saved.status_code == 303
        faults = m365.control("GET", "faults")["faults"]
        assert (
            faults["throttle_next"] == 1
            and faults["delta_reset"] is True
            and faults["mailbox_concurrency"] == 2
        )
        assert m365.graph("GET", "/domains").headers["retry-after"] == "4.5"
        client.post("/_emulator/admin/faults", data={"action": "reset"})
        assert m365.control("GET", "faults")["faults"]["delta_reset"] is False
        revoked = client.post("/_emulator/admin/consent", data={"consent": "revoke"})
        assert (
            "revoked" in revoked.headers["location"]
            and m365.control("GET", "info")["consented"] is False
        )


def test_purview_journal_rule_wizard_needs_an_admin(m365: EmulatorHandle) -> None:
    with m365.http(base_url=m365.base_url) as client:
        first = client.get("/purview/journalrules")
        assert first.status_code == 303 and first.headers["location"].startswith("/purview/signin")
        denied = client.post(
            "/purview/signin",
            data={
                "login": "mike.carson@enron.com",
                "passwd": m365.user_password,
                "next": "/purview/journalrules",
            },
        )
        assert "Administrator role" in denied.text
        signed = client.post(
            "/purview/signin",
            data={
                "login": m365.admin_upn,
                "passwd": m365.user_password,
                "next": "/purview/journalrules",
            },
        )
        assert signed.status_code == 303
        assert "New rule" in client.get("/purview/journalrules").text
        fields = {
            "journal_address": "ep-1@journal.mailvault.localhost",
            "name": "Mailvault",
            "recipient": "",
            "scope": "internal",
        }
        review = client.post("/purview/journalrules/new", data={**fields, "step": "review"})
        assert "Review and finish" in review.text and "Internal messages only" in review.text
        done = client.post("/purview/journalrules/new", data={**fields, "step": "submit"})
        assert done.status_code == 303
        rules = m365.control("GET", "journal-rules")["rules"]
        rule = next(r for r in rules if r["name"] == "Mailvault")
        assert rule["journal_address"] == fields["journal_address"] and rule["scope"] == "internal"
        listing = client.get("/purview/journalrules").text
        assert "ep-1@journal.mailvault.localhost" in listing
        action = re.search(r"action='(/purview/journalrules/[^']+/delete)'", listing)
        assert action is not None
        client.post(action.group(1))
        assert all(r["name"] != "Mailvault" for r in m365.control("GET", "journal-rules")["rules"])
