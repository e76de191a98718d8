"""The emulator's Microsoft-side pages in Debian's Chromium: sign in and grant admin
consent ("Connect Tenant"), then create a Purview journal rule through its wizard."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Route

from corpus import corpus_archive
from m365_emulator.pytest_plugin import m365, m365_server  # noqa: F401
from m365_emulator.testing import GRAPH_SCOPE, EmulatorHandle

CALLBACK = "http://127.0.0.1:8000/adminaccess/directory/entra/callback"

pytestmark = [pytest.mark.browser, pytest.mark.single_db]


@pytest.fixture(autouse=True)
def _enron_corpus() -> None:
    corpus_archive("enron-subset")  # the emulator's corpus fixture


def test_connect_tenant_consent_and_journal_rule_in_a_real_browser(
    m365: EmulatorHandle,  # noqa: F811 - the plugin's fixture
    browser: Browser,
) -> None:
    m365.set_consent(False)
    landed: list[str] = []

    def mailvault(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Mailvault callback</h1>")

    consent_url = f"{m365.base_url}/organizations/v2.0/adminconsent?" + urlencode(
        {
            "client_id": m365.client_id,
            "scope": GRAPH_SCOPE,
            "redirect_uri": CALLBACK,
            "state": "abc",
        }
    )
    # The session's browser (tests/browser/conftest.py): one Playwright per test session.
    context = browser.new_context(ignore_https_errors=True)
    try:
        context.route(f"{CALLBACK}*", mailvault)
        page = context.new_page()
        page.goto(consent_url)
        page.fill("input[name=login]", m365.admin_upn)
        page.fill("input[name=passwd]", m365.user_password)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Permissions requested")
        assert page.locator("ul.perms li").count() >= 6
        page.click("button[value=accept]")
        page.wait_for_selector("text=Mailvault callback")
        query = parse_qs(urlsplit(landed[-1]).query)
        assert query["admin_consent"] == ["True"] and query["tenant"] == [m365.tenant_id]
        assert query["state"] == ["abc"]
        assert m365.control("GET", "info")["consented"] is True
        # Same browser session: Purview opens without a second sign-in.
        page.goto(f"{m365.base_url}/purview/journalrules")
        page.click("text=New rule")
        page.fill("input[name=journal_address]", "ep-browser@journal.mailvault.localhost")
        page.fill("input[name=name]", "Browser rule")
        page.check("input[value=external]")
        page.click("button[value=review]")
        page.wait_for_selector("text=Review and finish")
        page.click("button[value=submit]")
        page.wait_for_selector("text=ep-browser@journal.mailvault.localhost")
        rules = m365.control("GET", "journal-rules")["rules"]
        rule = next(r for r in rules if r["name"] == "Browser rule")
        assert rule["scope"] == "external"
        m365.control("DELETE", f"journal-rules/{rule['id']}")
    finally:
        context.close()
