"""The tenant id and connection test the archiving profile and folder synchronization
forms show for the chosen directory service (adminaccess:directory_tenant), against the
emulator: connected, refused (a tenant without consent), and only for GET."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.directory import services
from mailvault.directory.models import DirectoryService
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def _service(tenant_a: TenantWorld, tenant_id: str) -> DirectoryService:
    with tenant_context(tenant_a.tenant):
        return services.save_service(
            "Contoso",
            DirectoryService.Kind.ENTRA,
            services.Constraints(only_group_names=[]),
            entra_tenant_id=tenant_id,
        )


def test_connected_tenant(
    admin_client_a: Client, tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    service = _service(tenant_a, m365.tenant_id)
    url = reverse("adminaccess:directory_tenant", args=[service.pk])
    page = admin_client_a.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert f'data-testid="tenant-id">{m365.tenant_id}<' in text
    assert f"Connected to tenant {m365.tenant_id}; domains: contoso.com" in text
    assert admin_client_a.post(url).status_code == 405


def test_refused_connection_is_shown(
    admin_client_a: Client, tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    service = _service(tenant_a, m365.tenant_id)
    m365.set_consent(False)
    page = admin_client_a.get(reverse("adminaccess:directory_tenant", args=[service.pk]))
    assert page.status_code == 200
    assert b"The connection failed." in page.content and b"Connected" not in page.content
