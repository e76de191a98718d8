"""LDAP synchronization against a real slapd: plain, StartTLS, LDAPS, filters, mapping,
enabled users only, cycles, removals, dry run, idempotence."""

from __future__ import annotations

import pytest

from directory.slapd import ADMIN_DN, ADMIN_PASSWORD, BASE_DN, Slapd
from factories import TenantWorld
from mailvault.accounts.models import Domain, Group, User
from mailvault.archive.models import Mailbox
from mailvault.directory import ldap, services, sync
from mailvault.directory.models import DirectoryService, SyncedObject
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def make_service(
    slapd: Slapd, security: str = "starttls", name: str = "Corporate LDAP", **overrides: object
) -> DirectoryService:
    ldap_settings = services.LdapSettings(
        host="localhost",
        port=slapd.ldaps_port if security == "ldaps" else slapd.port,
        security=security,
        ca_pem=slapd.ca_pem,
        bind_dn=ADMIN_DN,
        bind_password=ADMIN_PASSWORD,
        base_dn=BASE_DN,
        attributes={"enabled_filter": "(!(employeeType=disabled))"},
    )
    for key, value in overrides.items():
        setattr(ldap_settings, key, value)
    return services.save_service(
        name,
        DirectoryService.Kind.LDAP,
        services.Constraints(only_group_names=[]),
        ldap=ldap_settings,
    )


@pytest.mark.parametrize("security", ["plain", "starttls", "ldaps"])
def test_sync_creates_users_groups_domains_mailboxes(
    tenant_a: TenantWorld, slapd: Slapd, security: str
) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd, security)
        result = sync.synchronize(service)
        assert not result.dry_run
        users = {u.username: u for u in services.users_of(service)}
        # carol is disabled, dave has no mailbox: both left out by the default constraints
        assert set(users) == {"alice@example.org", "bob@example.org"}
        assert users["alice@example.org"].source == User.Source.DIRECTORY
        assert not users["alice@example.org"].has_usable_password()
        domain = Domain.objects.get(name="example.org")
        assert domain.kind == Domain.Kind.SYNCHRONIZED and domain.verified
        assert not domain.deletable
        mailbox = Mailbox.objects.get(primary_address="alice@example.org")
        assert mailbox.owner == users["alice@example.org"]
        assert mailbox.directory_service_name == "Corporate LDAP"
        assert set(mailbox.addresses.values_list("address", flat=True)) == {
            "alice@example.org",
            "a.archer@example.org",
        }
        # staff and engineering contain each other: both hold alice and bob
        staff = Group.objects.get(name="staff")
        engineering = Group.objects.get(name="engineering")
        assert staff.source == Group.Source.DIRECTORY
        assert set(staff.members.values_list("username", flat=True)) == set(users)
        assert set(engineering.members.values_list("username", flat=True)) == set(users)
        assert any("cycle" in w for w in result.warnings)
        # the same directory again changes nothing
        again = sync.synchronize(service)
        assert again.changes == []


def test_wrong_password_and_untrusted_certificate_change_nothing(
    tenant_a: TenantWorld, slapd: Slapd
) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd, bind_password="wrong")
        with pytest.raises(services.DirectoryError, match=r"bind .* refused"):
            sync.synchronize(service)
        untrusted = make_service(slapd, "ldaps", name="other", ca_pem="")
        with pytest.raises(services.DirectoryError):
            sync.synchronize(untrusted)
        assert not SyncedObject.objects.exists()
        assert not User.objects.filter(source=User.Source.DIRECTORY).exists()
        # "accept all certificates" connects without the CA
        untrusted.ldap_accept_all_certificates = True
        untrusted.save()
        assert "Connected" in ldap.test_connection(untrusted)


def test_dry_run_lists_and_changes_nothing(tenant_a: TenantWorld, slapd: Slapd) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd)
        result = sync.synchronize(service, dry_run=True)
        assert result.dry_run
        listed = {str(c) for c in result.changes}
        assert "Create user alice@example.org" in listed
        assert "Create mailbox alice@example.org" in listed
        assert "Create domain example.org" in listed
        assert not User.objects.filter(username="alice@example.org").exists()
        assert not Domain.objects.filter(name="example.org").exists()


def test_constraints_and_removals(tenant_a: TenantWorld, slapd: Slapd) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd, user_filter="(&(objectClass=inetOrgPerson)(uid=*))")
        service.enabled_only = False
        service.save()
        sync.synchronize(service)
        carol = User.objects.get(username="carol@example.org")
        assert carol.is_active is False  # synchronized, but disabled like in the directory
        # only members of "engineering" (bob, and alice through the nested staff group)
        service.only_group_names = ["engineering"]
        service.enabled_only = True
        service.save()
        result = sync.synchronize(service)
        assert "Remove user carol@example.org" in {str(c) for c in result.changes}
        assert not User.objects.filter(username="carol@example.org").exists()
        # the archive mailbox stays when its user goes
        assert Mailbox.objects.filter(primary_address="carol@example.org").exists()
        # a user filter that leaves bob out, without removal: bob is disabled, not deleted
        service.remove_missing = False
        service.ldap_user_filter = "(&(objectClass=inetOrgPerson)(!(uid=bob)))"
        service.save()
        sync.synchronize(service)
        assert User.objects.get(username="bob@example.org").is_active is False


def test_changes_in_directory_are_followed(tenant_a: TenantWorld, slapd: Slapd) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd)
        sync.synchronize(service)
        slapd.ldapmodify(
            f"dn: uid=bob,ou=people,{BASE_DN}\nchangetype: modify\nreplace: cn\ncn: Robert Baker\n"
            "-\nadd: mail\nmail: rob@example.org\n"
        )
        try:
            result = sync.synchronize(service)
            bob = User.objects.get(username="bob@example.org")
            assert bob.display_name == "Robert Baker"
            mailbox = Mailbox.objects.get(primary_address="bob@example.org")
            assert "rob@example.org" in set(mailbox.addresses.values_list("address", flat=True))
            assert any(c.what == "user" and c.action == "update" for c in result.changes)
        finally:
            slapd.ldapmodify(
                f"dn: uid=bob,ou=people,{BASE_DN}\nchangetype: modify\nreplace: cn\n"
                "cn: Bob Baker\n-\ndelete: mail\nmail: rob@example.org\n"
            )


def test_deleting_the_service_deletes_its_users(tenant_a: TenantWorld, slapd: Slapd) -> None:
    with tenant_context(tenant_a.tenant):
        service = make_service(slapd)
        sync.synchronize(service)
        assert services.delete_service(service) == 2
        assert not User.objects.filter(username__endswith="@example.org").exists()
        assert not DirectoryService.objects.exists()


def test_the_job_writes_the_process_log(tenant_a: TenantWorld, slapd: Slapd) -> None:
    from mailvault.jobs import services as jobs
    from mailvault.jobs.models import JobRun
    from mailvault.jobs.runner import execute_run

    with tenant_context(tenant_a.tenant):
        service = make_service(slapd)
        run = jobs.run_now(services.PROCESS_TYPE, service, triggered_by="test")
        assert execute_run(run.pk) == JobRun.Status.FINISHED
        texts = [m.text for m in run.messages.all()]
        assert any("Create user alice@example.org" in t for t in texts)
        assert any(t.startswith("Synchronization finished.") for t in texts)

        broken = make_service(slapd, name="broken", bind_password="nope")
        run = jobs.run_now(services.PROCESS_TYPE, broken, triggered_by="test")
        before = User.objects.count()
        assert execute_run(run.pk) == JobRun.Status.FAILED
        texts = [m.text for m in run.messages.all()]
        assert any("was not changed" in t and "refused" in t for t in texts)
        assert User.objects.count() == before


def test_bind_with_a_stored_secret(tenant_a: TenantWorld, slapd: Slapd) -> None:
    from mailvault.accounts.secrets import Secret, create_secret

    with tenant_context(tenant_a.tenant):
        secret = create_secret(
            "ldap bind", Secret.Kind.BASIC, username=ADMIN_DN, password=ADMIN_PASSWORD
        )
        service = make_service(slapd, bind_dn="", bind_password="", secret=secret)
        assert "Connected" in ldap.test_connection(service)
        assert not service.ldap_bind_password_sealed
