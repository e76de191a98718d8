"""Secrets: credentials and certificates that connectors use, stored encrypted, write-only.

A secret's value is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
tenant's data key, with the tenant and the secret's own random id bound in as associated
data, so a ciphertext copied to another row or tenant does not open. The value is never
shown again after it is saved: pages show only the public part (the user name, the
client id, the certificate's subject, thumbprint and public PEM for uploading to Entra ID).
Connectors call :func:`reveal` to get the value. A secret that anything still refers to
(a directory service, an archiving profile, …) cannot be deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.db import models, transaction
from django.utils import timezone

from mailvault.tenancy.context import current_tenant
from mailvault.tenancy.models import Tenant, TenantOwned

_SEAL_VERSION = b"\x01"


class SecretError(ValueError):
    """A secret operation Mailvault refuses, with a message for the user."""


class Secret(TenantOwned):
    """A named credential of a tenant. ``sealed`` holds the encrypted value."""

    class Kind(models.TextChoices):
        BASIC = "basic", "Basic credentials (user name and password)"
        OAUTH_CLIENT = "oauth_client", "OAuth client credentials"
        CERTIFICATE = "certificate", "Certificate"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Public part, shown on the page: the user name or client id.
    username = models.CharField(max_length=320, blank=True)
    # Public details: token endpoint and scope, certificate subject/thumbprint/PEM/expiry.
    public_info = models.JSONField(default=dict, blank=True)
    key_id = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    sealed = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="secret_name_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def summary(self) -> str:
        if self.kind == self.Kind.CERTIFICATE:
            expires = self.public_info.get("not_after", "")
            return f"{self.public_info.get('subject', '')} (expires {expires[:10]})"
        return self.username


@dataclass(frozen=True)
class SecretValue:
    """The revealed value, for connectors only (never rendered)."""

    kind: str
    username: str = ""
    password: str = field(default="", repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    token_endpoint: str = ""
    scope: str = ""
    certificate_pem: str = ""
    private_key_pem: str = field(default="", repr=False)


# --- sealing -------------------------------------------------------------------------


def _secret_key(tenant: Tenant) -> bytes:
    from mailvault.archive.store.tenant_keys import tenant_data_key  # avoids an import cycle

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mailvault:secrets:v1"
    ).derive(tenant_data_key(tenant))


def _aad(tenant: Tenant, key_id: uuid.UUID) -> bytes:
    return f"mailvault:secret:v1:{tenant.pk}:{key_id}".encode()


def _seal(secret: Secret, payload: dict[str, str]) -> None:
    tenant = current_tenant()
    nonce = os.urandom(12)
    plain = json.dumps(payload).encode()
    ciphertext = AESGCM(_secret_key(tenant)).encrypt(nonce, plain, _aad(tenant, secret.key_id))
    secret.sealed = _SEAL_VERSION + nonce + ciphertext


def reveal(secret: Secret) -> SecretValue:
    """The secret's value; for connectors, never for a page."""
    tenant = current_tenant()
    if secret.tenant_id != tenant.pk:
        raise PermissionError("a secret of another tenant")
    sealed = bytes(secret.sealed)
    if sealed[:1] != _SEAL_VERSION or len(sealed) < 1 + 12 + 16:
        raise SecretError(f"the secret {secret.name} is malformed")
    try:
        plain = AESGCM(_secret_key(tenant)).decrypt(
            sealed[1:13], sealed[13:], _aad(tenant, secret.key_id)
        )
    except InvalidTag as exc:
        raise SecretError(f"the secret {secret.name} cannot be decrypted") from exc
    data: dict[str, Any] = json.loads(plain)
    return SecretValue(kind=secret.kind, **data)


# --- certificates --------------------------------------------------------------------


def _certificate_info(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra shows SHA-1
        "not_after": cert.not_valid_after_utc.isoformat(),
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def _key_pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def generate_certificate(common_name: str, valid_days: int = 730) -> tuple[str, str]:
    """A self-signed RSA-2048 certificate and its key, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def load_uploaded_certificate(data: bytes, password: str = "") -> tuple[str, str]:
    """PEM (certificate and key in one file) or PKCS#12 (.pfx) → (certificate, key) PEM."""
    pw = password.encode() or None
    if b"-----BEGIN" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
            key = serialization.load_pem_private_key(data, password=pw)
        except (ValueError, TypeError) as exc:
            raise SecretError(f"The PEM file needs a certificate and its key: {exc}") from exc
    else:
        try:
            p12_key, p12_cert, _ = pkcs12.load_key_and_certificates(data, pw)
        except (ValueError, TypeError) as exc:
            raise SecretError(f"The PKCS#12 file cannot be read: {exc}") from exc
        if p12_key is None or p12_cert is None:
            raise SecretError("The PKCS#12 file must hold a certificate and its key.")
        key, cert = p12_key, p12_cert
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


# --- services ------------------------------------------------------------------------


def _check_name(name: str, exclude: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise SecretError("A secret needs a name.")
    clash = Secret.objects.filter(name=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise SecretError(f"A secret named {name} exists already.")
    return name


def _payload_and_public(
    kind: str, values: dict[str, str]
) -> tuple[dict[str, str], str, dict[str, str]]:
    if kind == Secret.Kind.BASIC:
        if not values.get("username") or not values.get("password"):
            raise SecretError("Basic credentials need a user name and a password.")
        payload = {"username": values["username"], "password": values["password"]}
        return payload, values["username"], {}
    if kind == Secret.Kind.OAUTH_CLIENT:
        if not values.get("client_id") or not values.get("client_secret"):
            raise SecretError("OAuth client credentials need a client id and a client secret.")
        public = {
            "token_endpoint": values.get("token_endpoint", ""),
            "scope": values.get("scope", ""),
        }
        payload = {"client_id": values["client_id"], "client_secret": values["client_secret"]}
        return {**payload, **public}, values["client_id"], public
    if kind == Secret.Kind.CERTIFICATE:
        cert_pem, key_pem = values.get("certificate_pem", ""), values.get("private_key_pem", "")
        if not cert_pem or not key_pem:
            raise SecretError("A certificate secret needs a certificate and its private key.")
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        payload = {"certificate_pem": cert_pem, "private_key_pem": key_pem}
        return payload, "", _certificate_info(cert)
    raise SecretError(f"Unknown kind of secret: {kind}")


@transaction.atomic
def create_secret(name: str, kind: str, **values: str) -> Secret:
    """Create a secret. ``values``: username/password, client_id/client_secret
    (token_endpoint, scope), or certificate_pem/private_key_pem."""
    secret = Secret(name=_check_name(name), kind=kind)
    payload, secret.username, secret.public_info = _payload_and_public(kind, values)
    _seal(secret, payload)
    secret.save()
    return secret


@transaction.atomic
def replace_secret(secret: Secret, name: str, **values: str) -> Secret:
    """Rename and/or store a new value (the kind stays). Empty ``values``: rename only."""
    secret.name = _check_name(name, exclude=secret.pk)
    if any(values.values()):
        payload, secret.username, secret.public_info = _payload_and_public(secret.kind, values)
        _seal(secret, payload)
    secret.updated_at = timezone.now()
    secret.save()
    return secret


def secret_usages(secret: Secret) -> list[str]:
    """What refers to this secret (any model's foreign key to it), as readable names."""
    used: list[str] = []
    for rel in Secret._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)):
            continue
        model = rel.related_model
        if not (isinstance(model, type) and issubclass(model, models.Model)):
            continue
        manager = getattr(model, "unscoped", None) or model._default_manager
        label = str(model._meta.verbose_name).capitalize()
        for obj in manager.filter(**{rel.field.name: secret})[:20]:  # type: ignore[union-attr]
            used.append(f"{label} {obj}")
    return used


@transaction.atomic
def delete_secret(secret: Secret) -> None:
    used = secret_usages(secret)
    if used:
        raise SecretError(f"{secret.name} is in use by {', '.join(used)}; it cannot be deleted.")
    try:
        secret.delete()
    except models.ProtectedError as exc:  # a reference added meanwhile
        raise SecretError(f"{secret.name} is in use; it cannot be deleted.") from exc
