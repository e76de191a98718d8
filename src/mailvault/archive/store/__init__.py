"""The archive's byte-exact blob store (DESIGN.md §3).

Messages are stored per tenant, content-addressed by the SHA-256 of their original
bytes, once; large base64 bodies (attachments) are stored once across messages; small
messages are gathered into blocks of consecutive messages (:mod:`.blocks`), which
compress to about half of what each would alone; every record (chunk, message or block)
is zstd-compressed and AES-256-GCM-encrypted with the tenant's data key, in append-only
pack files with a SQLite index beside them.

Library use (no Django needed)::

    with BlobStore(root, data_key) as store:
        ref = store.put(raw)                 # durable when it returns
        with store.batch():                  # one fsync for many
            refs = [store.put(m, durable=False) for m in messages]
        raw = store.get(ref.sha256)
        with store.open(ref.sha256) as reader:   # streaming, bounded memory
            ...
        # A pipeline prepares messages in parallel (thread-safe, no lock) and only the
        # append runs under the tenant's single-writer lock:
        prepared = store.prepare(raw)            # hash, split; zstd + AES-GCM of chunks
        ref = store.put_prepared(prepared, durable=False)   # small ones join a block
        # Import workers also seal the small ones together (blocks) before the append:
        many = store.prepare_many(raws)
        with store.batch():
            store.put_prepared_many(many)

Big messages are put as a binary stream (``store.put(open(path, "rb"))``) and read
with ``store.open``: memory then stays at a few MiB whatever the message size.

In Mailvault: ``store_for(tenant)``; keys via ``create_tenant_key`` /
``destroy_tenant_key`` (crypto-shredding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailvault.archive.store.blobstore import BlobRef, BlobStore
from mailvault.archive.store.errors import (
    BlobNotFound,
    CorruptRecord,
    IntegrityError,
    KeyManagementError,
    KeyUnwrapError,
    MasterKeyError,
    StoreAuthError,
    StoreError,
    StoreLocked,
    TenantKeyDestroyed,
    WrongKeyError,
)
from mailvault.archive.store.keys import KeyRing, load_master_key
from mailvault.archive.store.maintenance import Mismatch, RebuildReport, VerifyReport
from mailvault.archive.store.prepared import PreparedBlob, SealedBlock
from mailvault.archive.store.reader import BlobReader

if TYPE_CHECKING:
    from mailvault.archive.models import TenantDataKey
    from mailvault.tenancy.models import Tenant

__all__ = [
    "BlobNotFound",
    "BlobReader",
    "BlobRef",
    "BlobStore",
    "CorruptRecord",
    "IntegrityError",
    "KeyManagementError",
    "KeyRing",
    "KeyUnwrapError",
    "MasterKeyError",
    "Mismatch",
    "PreparedBlob",
    "RebuildReport",
    "SealedBlock",
    "StoreAuthError",
    "StoreError",
    "StoreLocked",
    "TenantKeyDestroyed",
    "VerifyReport",
    "WrongKeyError",
    "create_tenant_key",
    "destroy_tenant_key",
    "load_master_key",
    "store_for",
]


# The Django wiring is imported lazily so the library itself loads without Django.
def store_for(tenant: Tenant, **options: Any) -> BlobStore:
    """The tenant's store (its data key created on first use). Close it when done."""
    from mailvault.archive.store import tenant_keys

    return tenant_keys.store_for(tenant, **options)


def create_tenant_key(tenant: Tenant) -> TenantDataKey:
    from mailvault.archive.store import tenant_keys

    return tenant_keys.create_tenant_key(tenant)


def destroy_tenant_key(tenant: Tenant) -> None:
    """Crypto-shredding: the tenant's archive can never be read again."""
    from mailvault.archive.store import tenant_keys

    tenant_keys.destroy_tenant_key(tenant)
