"""Directory services and archiving profiles through the API: create, change, run now
(202 with the job), delete."""

from __future__ import annotations

import pytest
from django.test import Client

from factories import TenantWorld
from mailvault.jobs.models import JobRun
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db
JSON = "application/json"


def test_directory_service_lifecycle(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    made = admin_api_a.post(
        "/api/v1/directory-services/",
        data={
            "name": "Corp LDAP",
            "kind": "ldap",
            "ldap_host": "ldap.example",
            "ldap_base_dn": "dc=example,dc=com",
            "ldap_bind_dn": "cn=reader",
            "ldap_bind_password": "bind-secret",
        },
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    service = made.json()
    assert service["has_bind_password"] is True and "bind-secret" not in made.content.decode()
    no_host = admin_api_a.post(
        "/api/v1/directory-services/",
        data={"name": "Broken", "kind": "ldap", "ldap_base_dn": "dc=x"},
        content_type=JSON,
    )
    assert no_host.status_code == 400 and "ldap_host" in no_host.json()["error"]["details"]
    url = f"/api/v1/directory-services/{service['id']}/"
    changed = admin_api_a.patch(
        url, data={"ldap_port": 1389, "enabled_only": False}, content_type=JSON
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["ldap_port"], body["enabled_only"], body["ldap_host"]) == (
        1389,
        False,
        "ldap.example",
    )
    assert admin_api_a.patch(url, data={"kind": "entra"}, content_type=JSON).status_code == 400
    sync = admin_api_a.post(url + "synchronize/")
    assert sync.status_code == 202, sync.content
    assert sync["Location"] == f"/api/v1/jobs/{sync.json()['id']}/"
    assert sync.json()["status"] == "queued" and sync.json()["progress"]["done"] == 0
    again = admin_api_a.post(url + "synchronize/")
    assert again.status_code == 409 and again.json()["error"]["details"]["job"] == str(
        sync.json()["id"]
    )
    cancelled = admin_api_a.post(f"/api/v1/jobs/{sync.json()['id']}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    assert admin_api_a.delete(url).status_code == 204
    assert admin_api_a.get(url).status_code == 404


def test_archiving_profile_lifecycle(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    secret = admin_api_a.post(
        "/api/v1/secrets/",
        data={"name": "imap login", "kind": "basic", "username": "u", "password": "p"},
        content_type=JSON,
    ).json()
    made = admin_api_a.post(
        "/api/v1/archiving-profiles/",
        data={
            "name": "Old IMAP",
            "type": "imap",
            "host": "imap.example",
            "address": tenant_a.mailbox.primary_address,
            "secret": secret["id"],
            "mailbox": tenant_a.mailbox.pk,
        },
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    profile = made.json()
    assert profile["secret"] == secret["id"] and profile["mailbox"] == tenant_a.mailbox.pk
    url = f"/api/v1/archiving-profiles/{profile['id']}/"
    changed = admin_api_a.patch(
        url, data={"port": 1993, "skip_junk_trash": False}, content_type=JSON
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["port"] == 1993 and changed.json()["host"] == "imap.example"
    run = admin_api_a.post(url + "run/")
    assert run.status_code == 202, run.content
    with tenant_context(tenant_a.tenant):
        assert JobRun.objects.get(pk=run.json()["id"]).config_id == str(profile["id"])
    # The secret is in use: deleting it is refused; the running profile too.
    assert admin_api_a.delete(f"/api/v1/secrets/{secret['id']}/").status_code == 400
    assert admin_api_a.delete(url).status_code == 400
    admin_api_a.post(f"/api/v1/jobs/{run.json()['id']}/cancel/")
    assert admin_api_a.delete(url).status_code == 204
