"""The master key and the per-tenant data keys it wraps.

The master key comes from ``MAILVAULT_MASTER_KEY`` (base64 of 32 bytes). Without it, the
embedded default generates a key file once (mode 0600) and keeps using it; losing that
file makes every archive unreadable, so operators back it up apart from the data.

Data keys are wrapped with AES-256-GCM under the master key, with the tenant bound in as
associated data, so a wrapped key copied to another tenant's row does not unwrap.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailvault.archive.store.errors import KeyUnwrapError, MasterKeyError

MASTER_KEY_ENV = "MAILVAULT_MASTER_KEY"
KEY_SIZE = 32
_WRAP_VERSION = b"\x01"


def _decode_master_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError(f"{origin} is not base64: {exc}") from exc
    if len(key) != KEY_SIZE:
        raise MasterKeyError(f"{origin} must decode to {KEY_SIZE} bytes, not {len(key)}")
    return key


def load_master_key(key_file: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The master key from the environment, else from ``key_file`` (created once)."""
    configured = environ.get(MASTER_KEY_ENV, "")
    if configured.strip():
        return _decode_master_key(configured, MASTER_KEY_ENV)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(os.urandom(KEY_SIZE)).decode()
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs below
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(encoded + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    return _decode_master_key(key_file.read_text(), str(key_file))


class KeyRing:
    """Wraps and unwraps data keys with one master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_SIZE:
            raise MasterKeyError(f"the master key must be {KEY_SIZE} bytes")
        self._aead = AESGCM(master_key)

    def new_data_key(self, *, context: bytes) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (to persist)."""
        data_key = os.urandom(KEY_SIZE)
        return data_key, self.wrap(data_key, context=context)

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return _WRAP_VERSION + nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        if len(wrapped) != 1 + 12 + KEY_SIZE + 16 or wrapped[:1] != _WRAP_VERSION:
            raise KeyUnwrapError("the wrapped data key is malformed")
        try:
            return self._aead.decrypt(wrapped[1:13], wrapped[13:], context)
        except InvalidTag as exc:
            raise KeyUnwrapError(
                "the data key does not unwrap: wrong master key, or it belongs to another tenant"
            ) from exc
