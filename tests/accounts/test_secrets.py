"""Secrets: encrypted at rest, write-only, bound to their tenant, not deletable in use."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from mailvault.accounts import secrets
from mailvault.accounts.secrets import Secret, SecretError
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def test_value_is_sealed_revealed_and_bound_to_its_row(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        one = secrets.create_secret(
            "imap login", Secret.Kind.BASIC, username="alice", password="Very-Secret-42"
        )
        other = secrets.create_secret(
            "other", Secret.Kind.BASIC, username="bob", password="Another-Secret-43"
        )
        one.refresh_from_db()
        assert b"Very-Secret-42" not in bytes(one.sealed)
        assert secrets.reveal(one).password == "Very-Secret-42"
        assert "Very-Secret-42" not in repr(secrets.reveal(one))
        # A sealed value copied onto another secret does not open there.
        Secret.objects.filter(pk=other.pk).update(sealed=bytes(one.sealed))
        other.refresh_from_db()
        with pytest.raises(SecretError, match="cannot be decrypted"):
            secrets.reveal(other)
        with pytest.raises(SecretError, match="exists already"):
            secrets.create_secret("imap login", Secret.Kind.BASIC, username="x", password="y")


def test_another_tenant_cannot_reveal(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        secret = secrets.create_secret(
            "a's", Secret.Kind.OAUTH_CLIENT, client_id="cid", client_secret="csecret"
        )
    with tenant_context(tenant_b.tenant), pytest.raises(PermissionError):
        secrets.reveal(secret)


def test_admin_pages_never_show_the_value(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:secret_create"),
        {"name": "mailbox login", "kind": "basic", "username": "carol", "password": "Pw-Hidden-77"},
    )
    assert response.status_code == 302
    listing = admin_client_a.get(reverse("adminaccess:secrets"))
    assert b"carol" in listing.content and b"Pw-Hidden-77" not in listing.content
    with tenant_context(tenant_a.tenant):
        secret = Secret.objects.get(name="mailbox login")
    edit_url = reverse("adminaccess:secret_edit", args=[secret.pk])
    page = admin_client_a.get(edit_url)
    assert b"Pw-Hidden-77" not in page.content
    # Saving without a new password keeps the stored one; a new one replaces it.
    admin_client_a.post(edit_url, {"name": "renamed", "username": "carol", "password": ""})
    with tenant_context(tenant_a.tenant):
        secret.refresh_from_db()
        assert secret.name == "renamed" and secrets.reveal(secret).password == "Pw-Hidden-77"
    admin_client_a.post(edit_url, {"name": "renamed", "username": "carol", "password": "New-Pw-1"})
    with tenant_context(tenant_a.tenant):
        secret.refresh_from_db()
        assert secrets.reveal(secret).password == "New-Pw-1"
        assert secret.kind == Secret.Kind.BASIC


def test_certificates_generated_and_uploaded(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:secret_create"),
        {"name": "app cert", "kind": "certificate", "cert_source": "generate", "common_name": "mv"},
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        generated = Secret.objects.get(name="app cert")
        assert generated.public_info["subject"] == "CN=mv"
        assert "PRIVATE KEY" in secrets.reveal(generated).private_key_pem
    download = admin_client_a.get(reverse("adminaccess:secret_certificate", args=[generated.pk]))
    assert download.status_code == 200
    cert = x509.load_pem_x509_certificate(download.content)
    assert cert.fingerprint(hashes.SHA1()).hex().upper() == generated.public_info["thumbprint"]
    assert b"PRIVATE KEY" not in download.content

    cert_pem, key_pem = secrets.generate_certificate("uploaded")
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    pfx = pkcs12.serialize_key_and_certificates(
        b"up",
        key,  # type: ignore[arg-type]
        x509.load_pem_x509_certificate(cert_pem.encode()),
        None,
        serialization.BestAvailableEncryption(b"pfx-pass"),
    )
    with pytest.raises(SecretError):
        secrets.load_uploaded_certificate(pfx, "wrong-pass")
    loaded_cert, _ = secrets.load_uploaded_certificate(pfx, "pfx-pass")
    assert loaded_cert == cert_pem


def test_a_secret_in_use_cannot_be_deleted(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        secret = secrets.create_secret("used", Secret.Kind.BASIC, username="u", password="p")
        profile = ArchivingProfile.objects.create(
            name="uses it", type=ArchivingProfile.Type.IMAP, secret=secret, host="h"
        )
    admin_client_a.post(reverse("adminaccess:secret_delete", args=[secret.pk]))
    with tenant_context(tenant_a.tenant):
        assert Secret.objects.filter(pk=secret.pk).exists()
        assert secrets.secret_usages(secret) == ["Archiving profile uses it"]
        profile.delete()
    admin_client_a.post(reverse("adminaccess:secret_delete", args=[secret.pk]))
    with tenant_context(tenant_a.tenant):
        assert not Secret.objects.filter(pk=secret.pk).exists()
