"""Django wiring: tenant data keys in ``TenantDataKey`` rows, stores under settings.

The wrapped key is bound to the tenant's primary key (AES-GCM associated data), so a
row copied to another tenant does not unwrap. Destroying a key overwrites the wrapped
bytes and stamps ``destroyed_at``; the row stays, so the store refuses, with a clear
message, ever to open again, and a new key can never be slipped in under old packs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError as DatabaseIntegrityError
from django.db import transaction
from django.utils import timezone

from mailvault.archive.models import TenantDataKey
from mailvault.archive.store.blobstore import BlobStore
from mailvault.archive.store.errors import KeyManagementError, TenantKeyDestroyed
from mailvault.archive.store.keys import KeyRing, load_master_key
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


def keyring() -> KeyRing:
    return KeyRing(load_master_key(Path(settings.MAILVAULT_MASTER_KEY_FILE)))


def _context(tenant: Tenant) -> bytes:
    return f"mailvault:tenant-data-key:v1:{tenant.pk}".encode()


def store_root(tenant: Tenant) -> Path:
    return Path(settings.MAILVAULT_STORE_DIR) / f"tenant-{tenant.pk}"


def create_tenant_key(tenant: Tenant) -> TenantDataKey:
    """A new data key for a tenant that has none (never after one was destroyed)."""
    _, wrapped = keyring().new_data_key(context=_context(tenant))
    with tenant_context(tenant):
        if TenantDataKey.objects.exists():
            raise KeyManagementError(f"tenant {tenant.name} already has a data key")
        return TenantDataKey.objects.create(wrapped_key=wrapped)


def tenant_data_key(tenant: Tenant, *, create: bool = True) -> bytes:
    """The tenant's unwrapped data key."""
    with tenant_context(tenant):
        row = TenantDataKey.objects.first()
        if row is None:
            if not create:
                raise KeyManagementError(f"tenant {tenant.name} has no data key")
            try:
                with transaction.atomic():
                    row = create_tenant_key(tenant)
            except (DatabaseIntegrityError, KeyManagementError):
                row = TenantDataKey.objects.get()  # created concurrently
        if row.destroyed_at is not None:
            raise TenantKeyDestroyed(
                f"the data key of tenant {tenant.name} was destroyed on "
                f"{row.destroyed_at:%Y-%m-%d %H:%M} UTC; its archive can never be read again"
            )
        return keyring().unwrap(bytes(row.wrapped_key), context=_context(tenant))


def destroy_tenant_key(tenant: Tenant) -> None:
    with tenant_context(tenant), transaction.atomic():
        row = TenantDataKey.objects.select_for_update().first()
        if row is None:
            row = TenantDataKey(wrapped_key=b"")
        row.wrapped_key = b""
        row.destroyed_at = row.destroyed_at or timezone.now()
        row.save()


def store_for(tenant: Tenant, **options: Any) -> BlobStore:
    options.setdefault("compression_level", settings.MAILVAULT_STORE_COMPRESSION_LEVEL)
    return BlobStore(store_root(tenant), tenant_data_key(tenant), **options)
