"""The operator API: operator keys only; provision, list, suspend/resume, quotas, usage,
offboard (refused under a legal hold)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from factories import TenantWorld
from mailvault.accounts.models import Domain, User
from mailvault.api.models import ApiKey, OperatorApiKey
from mailvault.archive.models import Mailbox, Message
from mailvault.archive.store.tenant_keys import TenantKeyDestroyed, tenant_data_key
from mailvault.compliance import holds
from mailvault.compliance.models_audit import AuditEntry, OperatorAuditEntry
from mailvault.compliance.models_holds import LegalHold
from mailvault.sources.models import JournalEndpoint
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

from .conftest import api_client, make_key

pytestmark = pytest.mark.django_db
BASE = "/api/operator/v1/tenants/"


def test_operator_key_command_creates_lists_and_revokes(db: None) -> None:
    out = StringIO()
    call_command("operator_api_key", "create", "billing", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("mvo_")
    key = OperatorApiKey.objects.get(name="billing")
    assert token not in key.secret_hash and token.startswith(key.prefix)
    assert api_client(token).get(BASE).status_code == 200
    listing = StringIO()
    call_command("operator_api_key", "list", stdout=listing)
    assert key.prefix in listing.getvalue() and token not in listing.getvalue()
    call_command("operator_api_key", "revoke", key.prefix, stdout=StringIO())
    refused = api_client(token).get(BASE)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"


def test_only_operator_keys(operator_token: str, tenant_a: TenantWorld) -> None:
    assert Client().get(BASE).status_code == 401
    tenant_key = api_client(make_key(tenant_a)).get(BASE)
    assert tenant_key.status_code == 403
    # And an operator key is no tenant key: it reaches no tenant's data.
    assert api_client(operator_token).get("/api/v1/users/").status_code == 403


def test_list_and_provision(operator_api: Client, tenant_a: TenantWorld) -> None:
    names = {t["name"] for t in operator_api.get(BASE).json()["results"]}
    assert {"tenant-a", "tenant-b", "tenant-c"} <= names
    made = operator_api.post(
        BASE, data={"name": "newco", "display_name": "New Co"}, content_type="application/json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["admin_username"] == "admin@newco" and body["admin_password"]
    tenant = Tenant.objects.get(name="newco")
    with tenant_context(tenant):
        admin = User.objects.get(username="admin@newco")
        assert admin.check_password(body["admin_password"]) and admin.must_change_password
    entry = OperatorAuditEntry.objects.get(request_id=made["X-Request-ID"])
    assert entry.actor_type == "api" and "operator API key" in entry.actor and entry.success
    again = operator_api.post(BASE, data={"name": "newco"}, content_type="application/json")
    assert again.status_code == 400 and "exists already" in again.json()["error"]["message"]
    bad = operator_api.post(BASE, data={"name": "Not Valid!"}, content_type="application/json")
    assert bad.status_code == 400


def test_suspend_and_resume_stop_and_restart_the_tenants_keys(
    operator_api: Client, tenant_a: TenantWorld
) -> None:
    client = api_client(make_key(tenant_a))
    url = f"{BASE}{tenant_a.tenant.pk}/"
    suspended = operator_api.post(url + "suspend/")
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert client.get("/api/v1/users/").status_code == 401
    resumed = operator_api.post(url + "resume/")
    assert resumed.json()["status"] == "active"
    assert client.get("/api/v1/users/").status_code == 200


def test_quotas_and_usage(operator_api: Client, tenant_a: TenantWorld) -> None:
    url = f"{BASE}{tenant_a.tenant.pk}/"
    set_ = operator_api.patch(
        url + "quotas/",
        data={"max_users": 10, "max_storage_bytes": 5 << 30},
        content_type="application/json",
    )
    assert set_.status_code == 200
    tenant = Tenant.objects.get(pk=tenant_a.tenant.pk)
    assert (tenant.max_users, tenant.max_mailboxes, tenant.max_storage_bytes) == (10, None, 5 << 30)
    operator_api.patch(url + "quotas/", data={"max_users": None}, content_type="application/json")
    assert Tenant.objects.get(pk=tenant.pk).max_users is None
    negative = operator_api.patch(
        url + "quotas/", data={"max_users": -1}, content_type="application/json"
    )
    assert negative.status_code == 400
    usage = operator_api.get(url + "usage/").json()
    assert usage["users"] == 2 and usage["mailboxes"] == 1 and usage["messages"] == 1
    assert usage["stored_bytes"] > 0


def test_offboarding_refused_under_a_legal_hold_then_done(
    operator_api: Client, tenant_c: TenantWorld
) -> None:
    url = f"{BASE}{tenant_c.tenant.pk}/"
    make_key(tenant_c)
    with tenant_context(tenant_c.tenant):
        JournalEndpoint.objects.create(name="protects the mailbox", mailbox=tenant_c.mailbox)
        hold = holds.create_hold(
            name="case 7", kind=LegalHold.Kind.TENANT, reason="litigation", actor=tenant_c.owner
        )
    refused = operator_api.delete(url)
    assert refused.status_code == 409 and "legal hold" in refused.json()["error"]["message"]
    assert Tenant.objects.filter(pk=tenant_c.tenant.pk).exists()
    with tenant_context(tenant_c.tenant):
        holds.release_hold(hold, actor=tenant_c.owner, reason="case closed")
    done = operator_api.delete(url)
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "offboarded"
    tenant = Tenant.objects.get(pk=tenant_c.tenant.pk)
    assert tenant.status == Tenant.Status.OFFBOARDED
    gone = [User, Mailbox, Message, Domain, LegalHold, ApiKey]
    assert not any(m._base_manager.filter(tenant=tenant).exists() for m in gone)
    with tenant_context(tenant):  # the audit log stays, and says what happened
        assert AuditEntry.objects.filter(activity="compliance.hold.release").exists()
        with pytest.raises(TenantKeyDestroyed):
            tenant_data_key(tenant)
    assert operator_api.post(url + "resume/").status_code == 409
    assert operator_api.delete(url).status_code == 409
