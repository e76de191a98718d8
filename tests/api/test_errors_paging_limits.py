"""One error body for everything, page-number pagination with a maximum page size,
rate limits per key (429 in the same shape), and the audit log of API writes."""

from __future__ import annotations

import pytest
from django.test import Client
from django.test.utils import override_settings

from factories import TenantWorld, add_message
from mailvault.accounts import services as accounts
from mailvault.archive import services as archive
from mailvault.compliance.models_audit import AuditEntry
from mailvault.tenancy.context import tenant_context

from .conftest import api_client, make_key

pytestmark = pytest.mark.django_db

SHAPE = {"code", "message", "details", "request_id"}


def _error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == SHAPE, body
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return body["error"]


def test_unknown_url_method_and_bad_input_share_the_shape(admin_api_a: Client) -> None:
    missing = admin_api_a.get("/api/v1/no-such-thing/")
    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"
    assert admin_api_a.post("/api/nothing/here", data={}).status_code == 404

    wrong = admin_api_a.put("/api/v1/users/", data={}, content_type="application/json")
    assert wrong.status_code == 405 and _error(wrong)["code"] == "method_not_allowed"

    bad = admin_api_a.post("/api/v1/users/", data={"domain": "x"}, content_type="application/json")
    assert bad.status_code == 400
    err = _error(bad)
    assert err["code"] == "invalid" and "local_part" in err["details"]

    refused = admin_api_a.post(
        "/api/v1/domains/", data={"name": "not a domain"}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert "is not a domain name" in _error(refused)["message"]

    garbage = admin_api_a.post("/api/v1/domains/", data="{", content_type="application/json")
    assert garbage.status_code == 400 and _error(garbage)["code"] == "parse_error"


def test_last_admin_guard_answers_400(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    response = admin_api_a.delete(f"/api/v1/users/{tenant_a.owner.pk}/")
    assert response.status_code == 400
    assert "without any active user holding the Admin role" in _error(response)["message"]


def test_an_unexpected_failure_is_a_500_in_the_shape(
    admin_api_a: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(accounts, "add_domain", lambda name: boom())
    response = admin_api_a.post(
        "/api/v1/domains/", data={"name": "x.example"}, content_type="application/json"
    )
    assert response.status_code == 500
    err = _error(response)
    assert err["code"] == "server_error" and "boom" not in err["message"]


@override_settings(MAILVAULT_API_PAGE_SIZE=2, MAILVAULT_API_MAX_PAGE_SIZE=3)
def test_pagination(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        for n in range(4):
            accounts.add_domain(f"d{n}.tenant-a.example")
    first = admin_api_a.get("/api/v1/domains/").json()
    assert first["count"] == 6 and len(first["results"]) == 2
    assert first["previous"] is None and "page=2" in first["next"]
    second = admin_api_a.get(first["next"]).json()
    assert not {d["id"] for d in first["results"]} & {d["id"] for d in second["results"]}
    capped = admin_api_a.get("/api/v1/domains/?page_size=100").json()
    assert len(capped["results"]) == 3
    beyond = admin_api_a.get("/api/v1/domains/?page=99")
    assert beyond.status_code == 404 and _error(beyond)["code"] == "not_found"


@override_settings(MAILVAULT_API_RATE="3/min")
def test_rate_limit_per_key(tenant_a: TenantWorld) -> None:
    one, other = api_client(make_key(tenant_a)), api_client(make_key(tenant_a))
    for _ in range(3):
        assert one.get("/api/v1/roles/").status_code == 200
    limited = one.get("/api/v1/roles/")
    assert limited.status_code == 429
    assert _error(limited)["code"] == "throttled"
    assert int(limited["Retry-After"]) > 0
    assert other.get("/api/v1/roles/").status_code == 200  # counted per key


def test_api_writes_are_audited_with_the_key(
    admin_api_a: Client, admin_key_a: str, tenant_a: TenantWorld
) -> None:
    response = admin_api_a.post(
        "/api/v1/domains/", data={"name": "audited.example"}, content_type="application/json"
    )
    assert response.status_code == 201
    refused = admin_api_a.delete(f"/api/v1/users/{tenant_a.owner.pk}/")
    assert refused.status_code == 400
    with tenant_context(tenant_a.tenant):
        entries = list(
            AuditEntry.objects.filter(
                request_id__in=[response["X-Request-ID"], refused["X-Request-ID"]]
            ).order_by("seq")
        )
    assert [(e.actor_type, e.success) for e in entries] == [("api", True), ("api", False)]
    prefix = "_".join(admin_key_a.split("_")[:2])
    assert all(prefix in e.actor and tenant_a.owner.username in e.actor for e in entries)
    assert entries[0].activity == "api:domains"


def test_reader_key_searches_but_does_not_manage(reader_api_a: Client, admin_api_a: Client) -> None:
    found = reader_api_a.get("/api/v1/search/?q=hello")
    assert found.status_code == 200 and found.json()["count"] == 1
    for url in ("/api/v1/users/", "/api/v1/mailboxes/", "/api/v1/jobs/"):
        denied = reader_api_a.get(url)
        assert denied.status_code == 403 and _error(denied)["code"] == "permission_denied"
    assert (
        reader_api_a.post("/api/v1/users/", data={}, content_type="application/json").status_code
        == 403
    )
    # And an Admin key (Admin does not allow reading mail) cannot search.
    assert admin_api_a.get("/api/v1/search/?q=hello").status_code == 403


def test_search_syntax_error_is_400(reader_api_a: Client) -> None:
    response = reader_api_a.get("/api/v1/search/?q=" + "subject:(unclosed")
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "q" in _error(response)["details"]


def test_compliance_key_searches_the_tenant_and_is_audited(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        group = accounts.create_group("Compliance officers", members=[tenant_a.owner])
        accounts.set_group_roles(group, ["compliance"])
        other, _ = accounts.create_user("compliance-subject", "tenant-a")

    with tenant_context(tenant_a.tenant):
        mailbox = archive.create_mailbox("compliance-subject@tenant-a", owner=other)
        add_message(mailbox, "hello there, officer")
    token = make_key(tenant_a, tenant_a.owner, ["compliance"])
    response = api_client(token).get("/api/v1/search/?q=hello")
    assert response.status_code == 200 and response.json()["count"] == 2
    with tenant_context(tenant_a.tenant):
        assert AuditEntry.objects.filter(
            request_id=response["X-Request-ID"], activity="search"
        ).exists()
    # The same user's Reader-only view would not reach the other mailbox.
    reader = api_client(make_key(tenant_a, tenant_a.member, ["reader"])).get(
        "/api/v1/search/?q=hello"
    )
    assert reader.json()["count"] == 1
