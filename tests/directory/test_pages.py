"""Admin Access > Directory Services pages (LDAP against the real slapd)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from directory.slapd import ADMIN_DN, ADMIN_PASSWORD, BASE_DN, Slapd
from factories import TenantWorld
from mailvault.accounts.models import User
from mailvault.directory.models import DirectoryService
from mailvault.jobs.models import JobRun, Schedule
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def ldap_post(slapd: Slapd, **extra: str) -> dict[str, str]:
    data = {
        "name": "Office LDAP",
        "kind": "ldap",
        "ldap_host": "127.0.0.1",
        "ldap_port": str(slapd.port),
        "ldap_security": "starttls",
        "ldap_ca_pem": slapd.ca_pem,
        "ldap_bind_dn": ADMIN_DN,
        "ldap_bind_password": ADMIN_PASSWORD,
        "ldap_base_dn": BASE_DN,
        "attr_id": "entryUUID",
        "attr_username": "mail",
        "attr_display_name": "cn",
        "attr_mail": "mail",
        "attr_addresses": "mail",
        "attr_group_name": "cn",
        "attr_member": "member",
        "attr_enabled_filter": "(!(employeeType=disabled))",
        "enabled_only": "on",
        "mailbox_only": "on",
        "remove_missing": "on",
    }
    data.update(extra)
    return data


def test_add_test_dry_run_run_and_delete(
    admin_client_a: Client, tenant_a: TenantWorld, slapd: Slapd
) -> None:
    page = admin_client_a.get(reverse("adminaccess:directory_services"))
    assert page.status_code == 200 and b"Add directory service" in page.content
    form = admin_client_a.get(reverse("adminaccess:directory_create"))
    assert b"Connect Tenant" in form.content
    response = admin_client_a.post(reverse("adminaccess:directory_create"), ldap_post(slapd))
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant_a.tenant):
        service = DirectoryService.objects.get(name="Office LDAP")
        assert service.ldap_bind_password_sealed.startswith("v1:")
        assert ADMIN_PASSWORD not in service.ldap_bind_password_sealed
    listing = admin_client_a.get(reverse("adminaccess:directory_services"))
    assert b"Office LDAP" in listing.content and b"icon clock" in listing.content

    tested = admin_client_a.post(
        reverse("adminaccess:directory_test", args=[service.pk]), follow=True
    )
    assert b"Connected to 127.0.0.1" in tested.content

    dry = admin_client_a.post(reverse("adminaccess:directory_dry_run", args=[service.pk]))
    assert b"Create user alice@example.org" in dry.content
    with tenant_context(tenant_a.tenant):
        assert not User.objects.filter(username="alice@example.org").exists()

    run = admin_client_a.post(reverse("adminaccess:directory_run", args=[service.pk]))
    assert run.status_code == 302
    with tenant_context(tenant_a.tenant):
        job = JobRun.objects.get(process_type="directory.sync")
        assert job.config_id == str(service.pk)

    # The type is fixed: an edit posting another type keeps LDAP
    edited = admin_client_a.post(
        reverse("adminaccess:directory_edit", args=[service.pk]),
        ldap_post(slapd, kind="entra", name="Office LDAP 2", ldap_bind_password=""),
    )
    assert edited.status_code == 302
    with tenant_context(tenant_a.tenant):
        service.refresh_from_db()
        assert service.kind == "ldap" and service.name == "Office LDAP 2"
        assert service.ldap_bind_password_sealed  # an empty password field keeps it

    # A schedule uses it: deletion refused
    with tenant_context(tenant_a.tenant):
        schedule = Schedule.objects.create(
            process_type="directory.sync",
            config_type="directory.directoryservice",
            config_id=str(service.pk),
            kind="daily",
            at_time="02:00",
        )
    refused = admin_client_a.post(reverse("adminaccess:directory_delete", args=[service.pk]))
    assert refused.status_code == 409 and b"in use" in refused.content
    with tenant_context(tenant_a.tenant):
        schedule.delete()
    confirm = admin_client_a.get(reverse("adminaccess:directory_delete", args=[service.pk]))
    assert b"synchronized user" in confirm.content
    gone = admin_client_a.post(reverse("adminaccess:directory_delete", args=[service.pk]))
    assert gone.status_code == 302
    with tenant_context(tenant_a.tenant):
        assert not DirectoryService.objects.exists()


def test_entra_needs_a_connected_tenant(admin_client_a: Client) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:directory_create"), {"name": "Contoso", "kind": "entra"}
    )
    assert response.status_code == 200
    assert b"Connect the tenant first" in response.content


def test_reader_cannot_open_directory_services(reader_client_a: Client) -> None:
    response = reader_client_a.get(reverse("adminaccess:directory_services"))
    assert response.status_code in (302, 403)
