"""Directory synchronization from Entra ID through the Microsoft 365 emulator (HTTPS):
first run, incremental runs through delta links, dry run, and the faults of the issue:
revoked consent, a 410 in the middle of a delta, 429 storms, a mailbox that disappears."""

from __future__ import annotations

import pytest

from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.models import Domain, Group, User
from mailvault.archive.models import Mailbox
from mailvault.directory import services, sync
from mailvault.directory.models import DirectoryService, DirectoryState, SyncedObject
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db


def entra_service(m365: EmulatorHandle, **constraints: object) -> DirectoryService:
    return services.save_service(
        "Contoso",
        DirectoryService.Kind.ENTRA,
        services.Constraints(only_group_names=[], **constraints),  # type: ignore[arg-type]
        entra_tenant_id=m365.tenant_id,
    )


def graph_users(m365: EmulatorHandle) -> list[dict[str, object]]:
    select = "id,userPrincipalName,mail,accountEnabled,userType,proxyAddresses"
    return list(m365.graph("GET", f"/users?$top=999&$select={select}").json()["value"])


def snapshot() -> tuple[int, int, int, int]:
    return (
        User.objects.count(),
        Group.objects.count(),
        Domain.objects.count(),
        SyncedObject.objects.count(),
    )


def test_first_run_then_incremental(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        result = sync.synchronize(service)
        linked = {o.external_id: o for o in SyncedObject.objects.filter(kind="user")}
        members = [
            u
            for u in graph_users(m365)
            if u["userType"] == "Member" and u["accountEnabled"] and u["mail"]
        ]
        assert linked and set(linked) <= {u["id"] for u in members}
        one = next(u for u in members if u["id"] in linked)
        user = linked[str(one["id"])].user
        assert user is not None and user.username == str(one["userPrincipalName"]).casefold()
        mailbox = Mailbox.objects.get(owner=user)
        proxies = {str(p).split(":", 1)[1].casefold() for p in one["proxyAddresses"]}  # type: ignore[union-attr]
        addresses = set(mailbox.addresses.values_list("address", flat=True))
        assert mailbox.primary_address == str(one["mail"]).casefold()
        assert addresses == {
            a for a in proxies if Domain.objects.filter(name=a.split("@")[1]).exists()
        }
        assert Domain.objects.filter(name="contoso.com", kind=Domain.Kind.SYNCHRONIZED).exists()
        assert Group.objects.filter(source=Group.Source.DIRECTORY).exists()
        state = DirectoryState.objects.get(service=service)
        assert state.users_delta_link and state.groups_delta_link
        assert result.count("user", "create") == len(linked)

        # Nothing changed in the tenant: nothing changes here.
        assert sync.synchronize(service).changes == []

        # One user renamed, one disabled, one new: only those are read and applied.
        others = [u for u in members if u["id"] in linked and u["id"] != one["id"]]
        m365.control("PATCH", f"users/{one['id']}", {"displayName": "Renamed Person"})
        m365.control("PATCH", f"users/{others[0]['id']}", {"accountEnabled": False})
        new = m365.control("POST", "users", {"mail": "newcomer@contoso.com", "displayName": "New"})
        notes: list[str] = []
        result = sync.synchronize(service, info=notes.append)
        assert any("changes read" in n for n in notes)
        user.refresh_from_db()
        assert user.display_name == "Renamed Person"
        assert User.objects.filter(username="newcomer@contoso.com").exists()
        # "only enabled accounts" + "remove users that left": the disabled user goes
        assert not SyncedObject.objects.filter(external_id=others[0]["id"]).exists()
        assert SyncedObject.objects.filter(external_id=new["id"]).exists()
        assert {c.action for c in result.changes if c.what == "user"} >= {
            "create",
            "update",
            "remove",
        }


def test_dry_run_changes_nothing(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        before = snapshot()
        result = sync.synchronize(service, dry_run=True)
        assert result.dry_run and result.count("user", "create") > 0
        assert snapshot() == before
        assert not DirectoryState.objects.filter(service=service).exists()


def test_revoked_consent_fails_cleanly(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        sync.synchronize(service)
        before = snapshot()
        m365.set_consent(False)
        with pytest.raises(services.DirectoryError, match="AADSTS700016"):
            sync.synchronize(service)
        assert snapshot() == before


def test_410_in_the_middle_of_a_delta_resyncs(tenant_a: TenantWorld, m365: EmulatorHandle) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        sync.synchronize(service)
        before = snapshot()
        m365.set_faults(delta_reset=True)
        warnings: list[str] = []
        # Every delta token answers 410 now: the run reads everything again instead.
        result = sync.synchronize(service, warn=warnings.append)
        assert result.changes == []
        m365.reset_faults()
        m365.set_faults(retry_after="0.05")
        assert any("no longer valid" in w for w in warnings)
        # consistent either way: the same directory as before
        sync.synchronize(service)
        assert snapshot() == before


def test_throttling_storm_and_a_mailbox_that_disappears(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        m365.set_faults(throttle_next=6, unavailable_next=3, retry_after="0.02")
        sync.synchronize(service)
        link = SyncedObject.objects.filter(kind="user", mailbox__isnull=False).first()
        assert link is not None and link.user is not None
        address = link.mailbox.primary_address  # type: ignore[union-attr]
        m365.control("PATCH", f"users/{link.external_id}", {"licensed": False})
        result = sync.synchronize(service)
        # "only users with a mailbox": the user goes; the archive mailbox stays
        assert not User.objects.filter(pk=link.user.pk).exists()
        assert Mailbox.objects.filter(primary_address=address).exists()
        assert any(c.action == "remove" and c.what == "user" for c in result.changes)


def test_job_logs_a_clear_message_when_consent_was_revoked(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    from mailvault.jobs import services as jobs
    from mailvault.jobs.models import JobRun
    from mailvault.jobs.runner import execute_run

    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        m365.set_consent(False)
        run = jobs.run_now(services.PROCESS_TYPE, service, triggered_by="test")
        assert execute_run(run.pk) == JobRun.Status.FAILED
        texts = " ".join(m.text for m in run.messages.all())
        assert "AADSTS700016" in texts and "connect the tenant again" in texts
        assert "was not changed" in texts


def test_group_membership_changes_arrive_through_the_delta(
    tenant_a: TenantWorld, m365: EmulatorHandle
) -> None:
    with tenant_context(tenant_a.tenant):
        service = entra_service(m365)
        sync.synchronize(service)
        users = SyncedObject.objects.filter(kind="user").count()
        group_link = next(
            link
            for link in SyncedObject.objects.filter(kind="group").select_related("group")
            if link.group is not None and link.group.members.count() < users
        )
        group = group_link.group
        assert group is not None
        before = set(group.members.values_list("pk", flat=True))
        outsider = (
            SyncedObject.objects.filter(kind="user")
            .exclude(user__in=group.members.all())
            .select_related("user")
            .first()
        )
        assert outsider is not None and outsider.user is not None
        m365.control(
            "POST", f"groups/{group_link.external_id}/members", {"id": outsider.external_id}
        )
        notes: list[str] = []
        result = sync.synchronize(service, info=notes.append)
        assert any("changes read" in n for n in notes)
        assert set(group.members.values_list("pk", flat=True)) == before | {outsider.user.pk}
        assert any(c.what == "group" and c.action == "update" for c in result.changes)
        m365.control("DELETE", f"groups/{group_link.external_id}/members/{outsider.external_id}")
        sync.synchronize(service)
        assert set(group.members.values_list("pk", flat=True)) == before
        # a new group with a nested group: transitive members in Mailvault
        nested = m365.control(
            "POST", "groups", {"displayName": "Outer", "members": [group_link.external_id]}
        )
        sync.synchronize(service)
        outer = Group.objects.get(directory_link__external_id=nested["id"])
        assert set(outer.members.values_list("pk", flat=True)) == before
