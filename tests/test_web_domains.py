"""Domains: adding manual ones, verifying them by DNS TXT (a fake resolver), refusing
bad names and the deletion of the default domain."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from mailvault.accounts import services
from mailvault.accounts.models import Domain
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

BAD_NAMES = [
    "",
    "   ",
    "localhost",
    "nodot",
    "a..example.com",
    ".example.com",
    "exa mple.com",
    "-bad.example.com",
    "bad-.example.com",
    "under_score.example.com",
    "semi;colon.com",
    "slash/x.com",
    "user@example.com",
    "a" * 64 + ".example.com",
    ("abcdefghi." * 26) + "com",  # longer than 253
]


def _domain(name: str) -> Domain:
    return Domain.unscoped.get(name=name)


def test_add_manual_domain_page(
    tenant_a: TenantWorld, admin_client_a: Client, dns_records: dict
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:domains"), {"name": " Archive.Example.ORG. "}
    )
    assert response.status_code == 302
    domain = _domain("archive.example.org")
    assert domain.tenant_id == tenant_a.tenant.pk
    assert domain.kind == Domain.Kind.MANUAL
    assert not domain.verified
    assert len(domain.verification_code) == 32
    page = admin_client_a.get(reverse("adminaccess:domains"))
    body = page.content.decode()
    assert "archive.example.org" in body
    assert f"v=MAILVAULT-VERIFY; p={domain.verification_code}" in body
    # Another tenant's domains are not on the page.
    assert "tenant-b" not in body


def test_verification_with_txt_record(
    tenant_a: TenantWorld, admin_client_a: Client, dns_records: dict
) -> None:
    domain = tenant_a.manual_domain
    verify = reverse("adminaccess:domain_verify", args=[domain.pk])

    # No record yet: not verified, and the page says what to publish.
    response = admin_client_a.post(verify, follow=True)
    assert "No TXT record" in response.content.decode()
    assert not _domain(domain.name).verified

    # A record with a wrong code, or at another name, does not count.
    dns_records[domain.name] = ["v=MAILVAULT-VERIFY; p=0000", "v=spf1 -all"]
    dns_records[f"other.{domain.name}"] = [domain.txt_record]
    admin_client_a.post(verify)
    assert not _domain(domain.name).verified

    dns_records[domain.name].append(f"v=MAILVAULT-VERIFY;  p={domain.verification_code}")
    response = admin_client_a.post(verify, follow=True)
    assert f"{domain.name} is verified" in response.content.decode()
    stored = _domain(domain.name)
    assert stored.verified
    assert stored.verified_at is not None


def test_verification_service_exact_record(tenant_a: TenantWorld, dns_records: dict) -> None:
    with tenant_context(tenant_a.tenant):
        domain = services.add_domain("proof.example.net")
        dns_records["proof.example.net"] = [f"v=MAILVAULT-VERIFY; p={domain.verification_code}x"]
        assert services.verify_domain(domain) is False
        dns_records["proof.example.net"] = [domain.txt_record]
        assert services.verify_domain(domain) is True
    assert _domain("proof.example.net").verified


def test_a_code_of_another_tenant_does_not_verify(
    tenant_a: TenantWorld, tenant_b: TenantWorld, dns_records: dict
) -> None:
    domain_a = tenant_a.manual_domain
    dns_records[domain_a.name] = [tenant_b.manual_domain.txt_record]
    with tenant_context(tenant_a.tenant):
        assert services.verify_domain(domain_a) is False


def test_dns_failure_is_reported(
    tenant_a: TenantWorld, admin_client_a: Client, settings: object
) -> None:
    settings.MAILVAULT_DNS_RESOLVER = "factories.FailingTxtResolver"  # type: ignore[attr-defined]
    domain = tenant_a.manual_domain
    response = admin_client_a.post(
        reverse("adminaccess:domain_verify", args=[domain.pk]), follow=True
    )
    assert "DNS lookup" in response.content.decode()
    assert not _domain(domain.name).verified


def test_default_domain_not_deletable(tenant_a: TenantWorld, admin_client_a: Client) -> None:
    default = tenant_a.default_domain
    with tenant_context(tenant_a.tenant), pytest.raises(services.AccountError):
        services.delete_domain(Domain.objects.get(pk=default.pk))
    response = admin_client_a.post(
        reverse("adminaccess:domain_delete", args=[default.pk]), follow=True
    )
    assert "cannot be deleted" in response.content.decode()
    assert Domain.unscoped.filter(pk=default.pk).exists()


def test_synchronized_domain_not_deletable(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        synced = Domain.objects.create(
            name="synced.example.com", kind=Domain.Kind.SYNCHRONIZED, verified=True
        )
        with pytest.raises(services.AccountError):
            services.delete_domain(synced)
    assert Domain.unscoped.filter(pk=synced.pk).exists()


def test_manual_domain_deletable_unless_in_use(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    with tenant_context(tenant_a.tenant):
        spare = services.add_domain("spare.example.com")
        used = services.add_domain("used.example.com")
        services.create_user("someone", "used.example.com", password="Some-Body-42")
    response = admin_client_a.post(
        reverse("adminaccess:domain_delete", args=[used.pk]), follow=True
    )
    assert "Users of used.example.com exist" in response.content.decode()
    assert Domain.unscoped.filter(pk=used.pk).exists()
    admin_client_a.post(reverse("adminaccess:domain_delete", args=[spare.pk]))
    assert not Domain.unscoped.filter(pk=spare.pk).exists()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_domain_names_refused(tenant_a: TenantWorld, name: str) -> None:
    count = Domain.unscoped.count()
    with tenant_context(tenant_a.tenant), pytest.raises(services.AccountError):
        services.add_domain(name)
    assert Domain.unscoped.count() == count


def test_bad_domain_name_page_shows_error(admin_client_a: Client) -> None:
    count = Domain.unscoped.count()
    response = admin_client_a.post(reverse("adminaccess:domains"), {"name": "exa mple.com"})
    assert response.status_code == 200
    assert "is not a domain name" in response.content.decode()
    assert Domain.unscoped.count() == count


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("bücher.example", "bücher.example"),
        ("xn--bcher-kva.example", "bücher.example"),  # kept in its Unicode form
        ("a-b.c-d.io", "a-b.c-d.io"),
    ],
)
def test_good_unusual_names_accepted(tenant_a: TenantWorld, name: str, stored: str) -> None:
    with tenant_context(tenant_a.tenant):
        assert services.add_domain(name).name == stored


def test_domain_of_another_tenant_refused(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant), pytest.raises(services.AccountError, match="in use"):
        services.add_domain(tenant_b.manual_domain.name.upper())
    assert _domain(tenant_b.manual_domain.name).tenant_id == tenant_b.tenant.pk


def test_users_only_on_own_domains(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        with pytest.raises(services.AccountError, match="does not belong"):
            services.create_user("x", tenant_b.name, password="Some-Body-42")
        with pytest.raises(services.AccountError, match="does not belong"):
            services.create_user("x", tenant_b.manual_domain.name, password="Some-Body-42")


def test_a_domain_and_its_punycode_form_are_one_domain(tenant_a: TenantWorld) -> None:
    from mailvault.archive.services import create_mailbox

    with tenant_context(tenant_a.tenant):
        added = services.add_domain("Bücher.Example")
        assert added.name == "bücher.example"
        with pytest.raises(services.AccountError, match="already in use"):
            services.add_domain("xn--bcher-kva.example")
        mailbox = create_mailbox("anna@xn--bcher-kva.example")
        assert mailbox.primary_address == "anna@bücher.example"
