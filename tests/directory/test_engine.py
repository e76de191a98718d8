"""The sync engine on directory pictures built by hand: cycles, address changes,
adopting a hand-made mailbox, the last-admin guard, idempotence."""

from __future__ import annotations

import pytest

from factories import TenantWorld
from mailvault.accounts.models import Group, GroupRole, User
from mailvault.accounts.roles import Role
from mailvault.accounts.services import LastAdminError
from mailvault.archive.models import Mailbox, MailboxAddress
from mailvault.archive.services import create_mailbox
from mailvault.directory import engine, services
from mailvault.directory.models import DirectoryService
from mailvault.directory.types import DirDomain, Directory, DirGroup, DirUser, smtp_addresses
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def test_transitive_members_with_a_cycle() -> None:
    groups = {
        "a": DirGroup("a", "A", members=["u1", "b"]),
        "b": DirGroup("b", "B", members=["u2", "c"]),
        "c": DirGroup("c", "C", members=["a", "u3"]),
        "d": DirGroup("d", "D", members=["c"]),
    }
    closure, cycles = engine.transitive_members(groups, ["u1", "u2", "u3"])
    assert closure["a"] == closure["b"] == closure["c"] == {"u1", "u2", "u3"}
    assert closure["d"] == {"u1", "u2", "u3"}
    assert cycles == ["a", "b", "c"]


def test_smtp_addresses() -> None:
    primary, every = smtp_addresses(
        ["smtp:Old@Contoso.com", "SMTP:Ann@Contoso.com", "X500:/o=x", "sip:ann@contoso.com"]
    )
    assert primary == "ann@contoso.com"
    assert every == ["old@contoso.com", "ann@contoso.com"]


def picture(primary: str = "ann@example.net", extra: list[str] | None = None) -> Directory:
    ann = DirUser(
        id="OID-Ann",
        username="ann@example.net",
        display_name="Ann",
        mail=primary,
        addresses=[primary, *(extra or [])],
        has_mailbox=True,
    )
    return Directory(
        users={ann.id: ann},
        groups={"g": DirGroup("g", "Staff", members=["OID-Ann"])},
        domains={"example.net": DirDomain("example.net")},
    )


def test_primary_address_change_and_adopting_a_mailbox(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        service = services.save_service(
            "Dir",
            DirectoryService.Kind.LDAP,
            services.Constraints([]),
            ldap=services.LdapSettings(host="x", base_dn="dc=x"),
        )
        first = engine.apply_directory(service, picture())
        assert {str(c) for c in first.changes} >= {
            "Create user ann@example.net",
            "Create mailbox ann@example.net",
        }
        # a hand-made mailbox of the new address exists already: it is not stolen
        handmade = create_mailbox("ann.b@example.net")
        engine.apply_directory(
            service, picture("ann.new@example.net", ["ann@example.net", "ann.b@example.net"])
        )
        box = Mailbox.objects.get(owner__username="ann@example.net")
        assert box.primary_address == "ann.new@example.net"
        assert set(box.addresses.values_list("address", flat=True)) == {
            "ann.new@example.net",
            "ann@example.net",
        }
        assert MailboxAddress.objects.get(address="ann.b@example.net").mailbox == handmade
        again = engine.apply_directory(service, picture("ann.new@example.net", ["ann@example.net"]))
        assert again.changes == []


def test_a_change_that_removes_the_last_admin_is_refused(tenant_a: TenantWorld) -> None:
    with tenant_context(tenant_a.tenant):
        service = services.save_service(
            "Dir",
            DirectoryService.Kind.LDAP,
            services.Constraints([]),
            ldap=services.LdapSettings(host="x", base_dn="dc=x"),
        )
        engine.apply_directory(service, picture())
        staff = Group.objects.get(name="Staff")
        GroupRole.objects.create(group=staff, role=Role.ADMIN)
        # the only other admin goes: ann (synchronized) is now the last one
        for grant in GroupRole.objects.filter(role=Role.ADMIN).exclude(group=staff):
            grant.delete()
        with pytest.raises(LastAdminError):
            engine.apply_directory(service, Directory(domains=picture().domains))
        assert User.objects.filter(username="ann@example.net").exists()
