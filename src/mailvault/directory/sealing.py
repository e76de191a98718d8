"""Write-only secrets of a directory service (the LDAP bind password), sealed at rest.

AES-256-GCM with a key derived from the installation's secret key (HKDF, a label of its
own); the sealed text is ``v1:<base64 nonce+ciphertext>``. The value is never shown in a
form again: an empty field keeps it.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_LABEL = b"mailvault directory secrets v1"


def _key() -> bytes:
    secret = str(settings.SECRET_KEY).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret)


def seal(value: str, *, context: str) -> str:
    if not value:
        return ""
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, value.encode(), context.encode())
    return "v1:" + base64.b64encode(nonce + sealed).decode()


def unseal(sealed: str, *, context: str) -> str:
    if not sealed:
        return ""
    if not sealed.startswith("v1:"):
        raise ValueError("unknown sealing format")
    raw = base64.b64decode(sealed[3:])
    return AESGCM(_key()).decrypt(raw[:12], raw[12:], context.encode()).decode()
