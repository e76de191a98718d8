"""Errors of the blob store. Every one names what failed and, where it can, where."""

from __future__ import annotations


class StoreError(RuntimeError):
    """Base class of every blob store error."""


class BlobNotFound(StoreError, KeyError):
    """No message (or chunk) with this SHA-256 is stored."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "blob not found"


class StoreLocked(StoreError):
    """Another writer held the tenant's write lock for longer than the lock timeout."""


class StoreAuthError(StoreError):
    """Authenticated decryption failed: the wrong data key, or bytes changed on disk."""


class WrongKeyError(StoreAuthError):
    """The data key given does not belong to this store."""


class IntegrityError(StoreError):
    """Bytes read back do not hash to what the index or the record header promises."""


class CorruptRecord(StoreError):
    """A record's framing (magic, lengths, checksums) is damaged."""


class KeyManagementError(StoreError):
    """Base class of key management errors (not the builtin KeyError)."""


class MasterKeyError(KeyManagementError):
    """The master key is missing or malformed."""


class KeyUnwrapError(KeyManagementError):
    """A wrapped data key could not be unwrapped with the master key."""


class TenantKeyDestroyed(KeyManagementError):
    """The tenant's data key was destroyed (crypto-shredded); its archive is unreadable."""
