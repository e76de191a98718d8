"""Secrets, the audit log, retention policies, legal holds and exports through the API:
thin over the compliance services, with the roles of Admin Access / Web Access."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.test import Client
from django.test.utils import override_settings

from factories import TenantWorld
from mailvault.accounts import services as accounts
from mailvault.accounts.secrets import Secret
from mailvault.jobs.models import JobRun
from mailvault.jobs.runner import execute_run
from mailvault.tenancy.context import tenant_context

from .conftest import api_client, make_key

pytestmark = pytest.mark.django_db
JSON = "application/json"


def _grant(world: TenantWorld, *roles: str) -> None:
    with tenant_context(world.tenant):
        group = accounts.create_group("API extra roles", members=[world.owner])
        accounts.set_group_roles(group, roles)
    world.owner._roles_cache = None  # type: ignore[attr-defined]


def test_secrets_never_answer_their_value(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    made = admin_api_a.post(
        "/api/v1/secrets/",
        data={"name": "imap", "kind": "basic", "username": "u1", "password": "pw-very-secret"},
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    assert "pw-very-secret" not in made.content.decode() and made.json()["username"] == "u1"
    listed = admin_api_a.get("/api/v1/secrets/")
    assert "pw-very-secret" not in listed.content.decode() and listed.json()["count"] == 1
    secret_id = made.json()["id"]
    renamed = admin_api_a.patch(
        f"/api/v1/secrets/{secret_id}/", data={"name": "imap2"}, content_type=JSON
    )
    assert renamed.json()["name"] == "imap2"
    incomplete = admin_api_a.post(
        "/api/v1/secrets/", data={"name": "x", "kind": "basic"}, content_type=JSON
    )
    assert incomplete.status_code == 400
    assert admin_api_a.delete(f"/api/v1/secrets/{secret_id}/").status_code == 204
    with tenant_context(tenant_a.tenant):
        assert not Secret.objects.exists()


def test_audit_log_needs_auditor_and_validates(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    admin_api_a.post("/api/v1/domains/", data={"name": "logged.example"}, content_type=JSON)
    assert admin_api_a.get("/api/v1/audit-log/").status_code == 403
    _grant(tenant_a, "auditor")
    auditor = api_client(make_key(tenant_a, tenant_a.owner, ["auditor"]))
    entries = auditor.get("/api/v1/audit-log/?activity=api:domains").json()["results"]
    assert entries and entries[0]["actor_type"] == "api" and entries[0]["success"] is True
    checked = auditor.post("/api/v1/audit-log/validation/")
    assert checked.status_code == 200
    assert checked.json()["intact"] is True and checked.json()["checked"] >= 1


def test_retention_policies(admin_api_a: Client) -> None:
    listed = admin_api_a.get("/api/v1/retention-policies/").json()["results"]
    default = next(p for p in listed if p["is_default"])
    assert admin_api_a.delete(f"/api/v1/retention-policies/{default['id']}/").status_code == 400
    made = admin_api_a.post(
        "/api/v1/retention-policies/",
        data={
            "name": "Newsletters",
            "period_days": 30,
            "scope": "filtered",
            "from_terms": "news@x.example",
        },
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    policy = made.json()
    assert policy["period_days"] == 30 and policy["scope"] == "filtered"
    empty_filter = admin_api_a.post(
        "/api/v1/retention-policies/", data={"name": "Bad", "scope": "filtered"}, content_type=JSON
    )
    assert empty_filter.status_code == 400
    changed = admin_api_a.patch(
        f"/api/v1/retention-policies/{policy['id']}/", data={"enabled": False}, content_type=JSON
    )
    assert changed.json()["enabled"] is False and changed.json()["period_days"] == 30
    assert admin_api_a.delete(f"/api/v1/retention-policies/{policy['id']}/").status_code == 204


def test_legal_hold_create_and_release(
    admin_api_a: Client, tenant_a: TenantWorld, reader_api_a: Client
) -> None:
    assert reader_api_a.get("/api/v1/legal-holds/").status_code == 403
    made = admin_api_a.post(
        "/api/v1/legal-holds/",
        data={
            "name": "Case 1",
            "kind": "mailbox",
            "reason": "lawsuit",
            "mailbox": tenant_a.mailbox.pk,
        },
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    hold = made.json()
    assert hold["active"] and hold["mailbox"] == tenant_a.mailbox.pk
    no_reason = admin_api_a.post(
        f"/api/v1/legal-holds/{hold['id']}/release/", data={}, content_type=JSON
    )
    assert no_reason.status_code == 400
    released = admin_api_a.post(
        f"/api/v1/legal-holds/{hold['id']}/release/", data={"reason": "settled"}, content_type=JSON
    )
    assert released.status_code == 200, released.content
    body = released.json()
    assert body["released"] is (body["hold"]["released_at"] is not None)


@override_settings()
def test_export_queues_a_job_and_downloads(tenant_a: TenantWorld, tmp_path: object) -> None:
    admin_only = api_client(make_key(tenant_a))
    assert admin_only.get("/api/v1/exports/").status_code == 403
    _grant(tenant_a, "compliance")
    client = api_client(make_key(tenant_a, tenant_a.owner, ["compliance"]))
    with override_settings(MAILVAULT_EXPORT_DIR=tmp_path):
        queued = client.post(
            "/api/v1/exports/",
            data={"source": "mailbox", "format": "zip", "mailbox": tenant_a.mailbox.pk},
            content_type=JSON,
        )
        assert queued.status_code == 202, queued.content
        body = queued.json()
        assert queued["Location"] == f"/api/v1/exports/{body['id']}/"
        job = client.get(f"/api/v1/jobs/{body['job']}/")
        assert job.status_code == 403  # the jobs log is Admin's; the export says its state
        not_yet = client.get(f"/api/v1/exports/{body['id']}/download/")
        assert not_yet.status_code == 409
        with tenant_context(tenant_a.tenant):
            assert execute_run(body["job"]) == JobRun.Status.FINISHED
        ready = client.get(f"/api/v1/exports/{body['id']}/").json()
        assert ready["status"] == "ready" and ready["message_count"] == 1
        assert ready["job"] == body["job"] and ready["progress"]["done"] >= 1
        download = client.get(f"/api/v1/exports/{body['id']}/download/")
        assert download.status_code == 200
        data = b"".join(download.streaming_content)
        assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 1
