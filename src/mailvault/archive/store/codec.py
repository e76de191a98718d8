"""Sealing and opening records: zstd, then AES-256-GCM with the tenant's data key."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailvault.archive.store.errors import CorruptRecord, StoreAuthError
from mailvault.archive.store.records import FLAG_ZSTD, RecordHeader, build_header, frame

DATA_KEY_SIZE = 32
NONCE_SIZE = 12
_KEY_CHECK_LABEL = b"mailvault-store-key-check-v1"


def key_check(data_key: bytes) -> bytes:
    """A value stored beside the index that tells a wrong key at open, not at first read."""
    return hmac.new(data_key, _KEY_CHECK_LABEL, hashlib.sha256).digest()[:16]


class RecordCodec:
    """Turns plaintext into a framed record and back; thread-safe (zstd contexts are
    kept per thread). Records do not depend on where they will be written, so they can
    be sealed in parallel, outside the store's write lock."""

    def __init__(self, data_key: bytes, *, level: int = 3, key_id: int = 1) -> None:
        if len(data_key) != DATA_KEY_SIZE:
            raise ValueError("the data key must be 32 bytes (AES-256)")
        self._aead = AESGCM(data_key)
        self._level = level
        self._local = threading.local()
        self.key_id = key_id

    def seal(self, kind: int, sha256: bytes, blob_size: int, plain: bytes) -> bytes:
        flags = 0
        payload = plain
        if len(plain) > 64:
            compressor = getattr(self._local, "compressor", None)
            if compressor is None:
                compressor = self._local.compressor = zstandard.ZstdCompressor(level=self._level)
            compressed = compressor.compress(plain)
            if len(compressed) < len(plain):
                payload, flags = compressed, FLAG_ZSTD
        nonce = os.urandom(NONCE_SIZE)
        header = build_header(
            kind=kind,
            flags=flags,
            key_id=self.key_id,
            sha256=sha256,
            blob_size=blob_size,
            plain_len=len(plain),
            body_len=len(payload) + 16,
            nonce=nonce,
        )
        body = self._aead.encrypt(nonce, payload, header[: len(header) - 4])
        return frame(header, body)

    def open(self, header: RecordHeader, body: bytes) -> bytes:
        try:
            payload = self._aead.decrypt(header.nonce, body, header.aad)
        except InvalidTag as exc:
            raise StoreAuthError(
                "record failed authentication: wrong data key, or its bytes changed on disk"
            ) from exc
        if not header.flags & FLAG_ZSTD:
            plain = payload
        else:
            decompressor = getattr(self._local, "decompressor", None)
            if decompressor is None:
                decompressor = self._local.decompressor = zstandard.ZstdDecompressor()
            try:
                plain = decompressor.decompress(payload, max_output_size=header.plain_len)
            except zstandard.ZstdError as exc:
                raise CorruptRecord(f"record does not decompress: {exc}") from exc
        if len(plain) != header.plain_len:
            raise CorruptRecord("record decompressed to an unexpected length")
        return plain
