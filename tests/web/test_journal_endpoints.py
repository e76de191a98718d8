"""Admin Access > Archiving > Journal Endpoints over HTTP (issue 5, items 1 and 4).

Add (with an existing mailbox or a Journal mailbox made with the "+"), the SMTP address
shown after Save, edit, enable/disable, delete, the allowlist and AUTH password rules,
tenant isolation and the counters — through the Django test client and the real
services; plus the two checks the SMTP listener makes per endpoint.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.hashers import check_password
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from factories import TenantWorld
from mailvault.archive.models import Mailbox
from mailvault.sources import journal_endpoints as service
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
LIST = reverse("adminaccess:journal_endpoints")
ADD = reverse("adminaccess:journal_endpoint_create")
NEW_MAILBOX = reverse("adminaccess:journal_mailbox_create")
PASSWORD = "Purview-Relay-7731xq"
JOURNAL_DOMAIN = "journal.mailvault.example"
ADDRESS_RE = re.compile(r"\bj-[0-9a-f]{32}@" + re.escape(JOURNAL_DOMAIN) + r"\b")


@pytest.fixture(autouse=True)
def _journal_domain(settings: Settings) -> None:
    settings.MAILVAULT_JOURNAL_DOMAIN = JOURNAL_DOMAIN


def edit_url(endpoint: JournalEndpoint) -> str:
    return reverse("adminaccess:journal_endpoint_edit", kwargs={"endpoint_id": endpoint.pk})


def endpoints(world: TenantWorld) -> list[JournalEndpoint]:
    with tenant_context(world.tenant):
        return list(JournalEndpoint.objects.select_related("mailbox").order_by("pk"))


def make_endpoint(world: TenantWorld, name: str = "M365", **kwargs: str) -> JournalEndpoint:
    with tenant_context(world.tenant):
        return service.create_endpoint(name, world.mailbox, **kwargs)


def post_endpoint(client: Client, url: str, mailbox: Mailbox | int | str, **fields: str) -> str:
    data = {"name": "Microsoft 365", "mailbox": str(getattr(mailbox, "pk", mailbox))}
    data.update(fields)
    response = client.post(url, data, **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def test_menu_opens_the_page_and_readers_are_refused(
    admin_client_a: Client, reader_client_a: Client
) -> None:
    page = admin_client_a.get(reverse("adminaccess:dashboard")).content.decode()
    assert f'href="{LIST}"' in page
    response = admin_client_a.get(LIST)
    assert response.status_code == 200
    assert "No journal endpoints yet" in response.content.decode()
    assert reader_client_a.get(LIST).status_code == 403
    assert reader_client_a.post(ADD, {"name": "x"}).status_code == 403


def test_create_with_an_existing_mailbox_shows_the_smtp_address(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    form = admin_client_a.get(ADD, **HTMX).content.decode()
    assert 'hx-post="' + ADD in form and "<html" not in form  # the dialog fragment
    assert f'value="{tenant_a.mailbox.pk}"' in form

    body = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, name="Microsoft 365")

    [endpoint] = endpoints(tenant_a)
    assert endpoint.name == "Microsoft 365"
    assert endpoint.mailbox == tenant_a.mailbox and endpoint.enabled
    assert endpoint.smtp_address == f"{endpoint.local_part}@{JOURNAL_DOMAIN}"
    # The dialog stays open on the address, with a Copy button and the Purview hint.
    assert 'data-testid="journal-endpoint-saved"' in body
    assert f'value="{endpoint.smtp_address}"' in body and "readonly" in body
    assert 'data-copy="smtp-address"' in body and ">Copy</button>" in body
    assert "Send journal reports to" in body
    # And the list has it.
    listing = admin_client_a.get(LIST).content.decode()
    assert "Microsoft 365" in listing and endpoint.smtp_address in listing


def test_without_htmx_the_saved_page_shows_the_address(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    page = admin_client_a.get(ADD).content.decode()
    assert "<html" in page and "hx-post" not in page.split('id="journal-endpoint-form"')[1][:200]
    response = admin_client_a.post(ADD, {"name": "Plain", "mailbox": tenant_a.mailbox.pk})
    [endpoint] = endpoints(tenant_a)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body and f'value="{endpoint.smtp_address}"' in body


def test_addresses_are_unique_unguessable_and_in_the_journal_domain(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    first = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, name="One")
    second = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, name="Two")
    shown = [ADDRESS_RE.findall(first)[0], ADDRESS_RE.findall(second)[0]]
    a, b = endpoints(tenant_a)
    assert shown == [a.smtp_address, b.smtp_address]
    assert a.smtp_address != b.smtp_address
    for endpoint in (a, b):
        local, domain = endpoint.smtp_address.split("@")
        assert domain == JOURNAL_DOMAIN
        assert len(re.sub(r"[^0-9a-f]", "", local.removeprefix("j-"))) >= 32


def test_plus_creates_a_journal_mailbox_and_selects_it(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    small_form = admin_client_a.get(NEW_MAILBOX, **HTMX).content.decode()
    assert 'name="newmailbox-address"' in small_form and "Create mailbox" in small_form
    assert f"journal@{tenant_a.name}" in small_form  # the default domain as the example

    # The default domain (the tenant's name) is allowed for a journal mailbox.
    response = admin_client_a.post(
        NEW_MAILBOX,
        {"newmailbox-address": f"Journal@{tenant_a.name}", "newmailbox-display_name": "Journal"},
        **HTMX,
    )
    picker = response.content.decode()
    with tenant_context(tenant_a.tenant):
        created = Mailbox.objects.get(primary_address=f"journal@{tenant_a.name}")
    assert created.kind == Mailbox.Kind.JOURNAL and created.display_name == "Journal"
    assert re.search(rf'<option value="{created.pk}" selected>', picker), picker
    assert 'id="mailbox-picker"' in picker and "created and selected" in picker
    assert 'name="newmailbox-address"' not in picker  # the small form is gone

    post_endpoint(admin_client_a, ADD, created, name="With new mailbox")
    [endpoint] = endpoints(tenant_a)
    assert endpoint.mailbox == created


def test_plus_refuses_a_domain_the_tenant_does_not_have(
    admin_client_a: Client, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    before = Mailbox.unscoped.count()
    for address, error in [
        (f"journal@{tenant_b.name}", f"{tenant_b.name} is not a domain of this tenant"),
        ("not an address", "is not a mail address"),
        (tenant_a.mailbox.primary_address, "already belongs to mailbox"),
    ]:
        picker = admin_client_a.post(
            NEW_MAILBOX,
            {"newmailbox-address": address, "mailbox": str(tenant_a.mailbox.pk)},
            **HTMX,
        ).content.decode()
        assert error in picker
        assert 'name="newmailbox-address"' in picker  # still open, with the error
        assert re.search(rf'<option value="{tenant_a.mailbox.pk}" selected>', picker)
    assert Mailbox.unscoped.count() == before


def test_plus_without_javascript_returns_to_the_form_with_the_mailbox(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    page = admin_client_a.get(f"{NEW_MAILBOX}?next={ADD}").content.decode()
    assert "<html" in page and 'name="newmailbox-address"' in page
    assert f'name="next" value="{ADD}"' in page
    response = admin_client_a.post(
        f"{NEW_MAILBOX}?next={ADD}", {"newmailbox-address": f"archive@{tenant_a.name}"}
    )
    with tenant_context(tenant_a.tenant):
        created = Mailbox.objects.get(primary_address=f"archive@{tenant_a.name}")
    assert response.status_code == 302 and response["Location"] == f"{ADD}?mailbox={created.pk}"
    page = admin_client_a.get(response["Location"]).content.decode()
    assert re.search(rf'<option value="{created.pk}" selected>', page)


def test_journal_mailboxes_come_first_in_the_picker(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    with tenant_context(tenant_a.tenant):
        journal = service.create_journal_mailbox(f"zz-journal@{tenant_a.name}", "ZZ")
    form = admin_client_a.get(ADD).content.decode()
    journal_at = form.index(f'<option value="{journal.pk}"')
    other_at = form.index(f'<option value="{tenant_a.mailbox.pk}"')
    assert form.index('label="Journal mailboxes"') < journal_at < other_at
    assert form.index('label="Other mailboxes"') < other_at


def test_edit_keeps_the_address(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    endpoint = make_endpoint(tenant_a, "Old name")
    with tenant_context(tenant_a.tenant):
        other = service.create_journal_mailbox(f"journal@{tenant_a.name}")
    form = admin_client_a.get(edit_url(endpoint), **HTMX).content.decode()
    assert 'value="Old name"' in form and endpoint.smtp_address in form

    body = post_endpoint(
        admin_client_a,
        edit_url(endpoint),
        other,
        name="New name",
        allowed_networks="40.92.0.0/15\n\n2a01:111::/32\n",
    )

    [saved] = endpoints(tenant_a)
    assert (saved.name, saved.mailbox, saved.local_part) == (
        "New name",
        other,
        endpoint.local_part,
    )
    assert saved.allowed_networks == "40.92.0.0/15\n2a01:111::/32"
    assert "Journal endpoint saved: New name" in body and endpoint.smtp_address in body


def test_enable_and_disable(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    endpoint = make_endpoint(tenant_a)
    url = reverse("adminaccess:journal_endpoint_set_enabled", kwargs={"endpoint_id": endpoint.pk})
    assert admin_client_a.get(url).status_code == 405

    response = admin_client_a.post(url, {"enabled": "0"}, follow=True)
    [saved] = endpoints(tenant_a)
    assert not saved.enabled
    page = response.content.decode()
    assert "disabled: mail to its address is refused" in page
    assert re.search(r'data-testid="endpoint-state">Disabled<', page)
    assert ">Enable</button>" in page

    admin_client_a.post(url, {"enabled": "1"})
    [saved] = endpoints(tenant_a)
    assert saved.enabled


def test_delete_asks_then_deletes_and_keeps_the_mailbox(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    endpoint = make_endpoint(tenant_a, "Doomed")
    url = reverse("adminaccess:journal_endpoint_delete", kwargs={"endpoint_id": endpoint.pk})
    listing = admin_client_a.get(LIST).content.decode()
    assert f'action="{url}"' in listing and "return confirm(" in listing
    confirm = admin_client_a.get(url).content.decode()
    assert "Delete the journal endpoint Doomed?" in confirm and endpoints(tenant_a)

    # The journal mailbox cannot go while the endpoint uses it.
    with tenant_context(tenant_a.tenant), pytest.raises(ProtectedError):
        Mailbox.objects.get(pk=tenant_a.mailbox.pk).delete()

    response = admin_client_a.post(url, follow=True)
    assert "Journal endpoint Doomed deleted" in response.content.decode()
    assert endpoints(tenant_a) == []
    with tenant_context(tenant_a.tenant):
        assert Mailbox.objects.filter(pk=tenant_a.mailbox.pk).exists()


@pytest.mark.parametrize(
    ("networks", "line"),
    [("10.0.0.0/8\nnot-a-net", "Line 2: “not-a-net”"), ("192.0.2.0/33", "Line 1: “192.0.2.0/33”")],
)
def test_bad_networks_are_refused_naming_the_line(
    admin_client_a: Client, tenant_a: TenantWorld, networks: str, line: str
) -> None:
    body = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, allowed_networks=networks)
    assert line in body and "is not a network" in body
    assert 'data-testid="journal-endpoint-form"' in body  # the form again, not "saved"
    assert endpoints(tenant_a) == []


def test_networks_are_stored_canonical_and_checked() -> None:
    text = "10.1.2.3/8\n 192.0.2.7 \n10.0.0.0/8\n2001:DB8::1/32"
    assert service.normalize_networks(text) == "10.0.0.0/8\n192.0.2.7/32\n2001:db8::/32"
    endpoint = JournalEndpoint(allowed_networks=service.normalize_networks(text))
    assert service.allows_source(endpoint, "10.200.0.1")
    assert service.allows_source(endpoint, "::ffff:10.0.0.9")  # IPv4-mapped
    assert service.allows_source(endpoint, "2001:db8:ffff::2")
    assert not service.allows_source(endpoint, "192.0.2.8")
    assert not service.allows_source(endpoint, "garbage")
    assert service.allows_source(JournalEndpoint(allowed_networks=""), "203.0.113.5")


def test_auth_password_is_hashed_and_never_shown(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    body = post_endpoint(
        admin_client_a,
        ADD,
        tenant_a.mailbox,
        auth_username="m365relay",
        auth_password=PASSWORD,
    )
    [endpoint] = endpoints(tenant_a)
    assert endpoint.auth_username == "m365relay"
    assert PASSWORD not in endpoint.auth_password_hash
    assert check_password(PASSWORD, endpoint.auth_password_hash)
    assert service.check_auth(endpoint, "m365relay", PASSWORD)
    assert not service.check_auth(endpoint, "m365relay", PASSWORD + "x")
    assert not service.check_auth(endpoint, "other", PASSWORD)
    edit_page = admin_client_a.get(edit_url(endpoint)).content.decode()
    for page in (body, admin_client_a.get(LIST).content.decode(), edit_page):
        assert PASSWORD not in page and endpoint.auth_password_hash not in page
    assert "A password is set. Leave empty to keep it." in edit_page

    # Empty on edit keeps it; a new one replaces it; "remove" drops username and password.
    post_endpoint(admin_client_a, edit_url(endpoint), tenant_a.mailbox, auth_username="m365relay")
    [kept] = endpoints(tenant_a)
    assert kept.auth_password_hash == endpoint.auth_password_hash
    post_endpoint(
        admin_client_a,
        edit_url(endpoint),
        tenant_a.mailbox,
        auth_username="m365relay",
        auth_password="Another-Secret-551",
    )
    [changed] = endpoints(tenant_a)
    assert check_password("Another-Secret-551", changed.auth_password_hash)
    post_endpoint(
        admin_client_a,
        edit_url(endpoint),
        tenant_a.mailbox,
        auth_username="m365relay",
        remove_auth="on",
    )
    [removed] = endpoints(tenant_a)
    assert (removed.auth_username, removed.auth_password_hash) == ("", "")
    assert not service.check_auth(removed, "", "")


def test_auth_needs_both_username_and_password(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    body = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, auth_username="lonely")
    assert "Enter a password for SMTP authentication" in body
    body = post_endpoint(admin_client_a, ADD, tenant_a.mailbox, auth_password=PASSWORD)
    assert "Enter the username that goes with the password" in body
    assert PASSWORD not in body  # the password field is not rendered back
    assert endpoints(tenant_a) == []


def test_another_tenants_mailbox_or_endpoint_is_refused(
    admin_client_a: Client, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    body = post_endpoint(admin_client_a, ADD, tenant_b.mailbox)
    assert "Select a valid choice" in body
    assert tenant_b.mailbox.primary_address not in admin_client_a.get(ADD).content.decode()
    assert JournalEndpoint.unscoped.count() == 0

    foreign = make_endpoint(tenant_b, "B's endpoint")
    assert admin_client_a.get(edit_url(foreign)).status_code == 404
    assert "B&#x27;s endpoint" not in admin_client_a.get(LIST).content.decode()
    own = make_endpoint(tenant_a)
    post_endpoint(admin_client_a, edit_url(own), tenant_b.mailbox)
    [unchanged] = endpoints(tenant_a)
    assert unchanged.mailbox == tenant_a.mailbox

    # The service refuses it too, whatever the caller.
    with tenant_context(tenant_a.tenant), pytest.raises(service.JournalEndpointError):
        service.create_endpoint("sneaky", tenant_b.mailbox)


def test_counters_and_last_message_are_listed(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    busy = make_endpoint(tenant_a, "Busy")
    make_endpoint(tenant_a, "Quiet")
    with tenant_context(tenant_a.tenant):
        JournalEndpoint.objects.filter(pk=busy.pk).update(
            accepted=123456,
            rejected=78,
            deferred=9,
            last_received_at=datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC),
        )
    page = admin_client_a.get(LIST).content.decode()
    rows = re.findall(r'<tr data-testid="endpoint-row">(.*?)</tr>', page, re.S)
    busy_row, quiet_row = rows  # ordered by name
    cells = dict(re.findall(r'data-testid="endpoint-(\w[\w-]*)">([^<]*)<', busy_row))
    assert cells["accepted"] == "123456"
    assert cells["rejected"] == "78"
    assert cells["deferred"] == "9"
    assert re.fullmatch(r"2026-03-01 \d\d:34:56", cells["last-received"])
    quiet = dict(re.findall(r'data-testid="endpoint-(\w[\w-]*)">([^<]*)<', quiet_row))
    assert (quiet["accepted"], quiet["last-received"]) == ("0", "never")
