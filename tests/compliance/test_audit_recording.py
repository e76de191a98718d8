"""What gets into the audit log: Admin Access writes, sign-ins, denials, Compliance
reading, CLI commands — and the Auditor's pages that read it."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from factories import TenantWorld, admin_login, client_for
from mailvault import cli
from mailvault.accounts import services
from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.compliance import audit
from mailvault.compliance.audit.cli import redacted
from mailvault.compliance.audit.middleware import AuditMiddleware
from mailvault.compliance.models_audit import AuditEntry, OperatorAuditEntry
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


def _entries(tenant: Tenant | None, **filters: object) -> list[AuditEntry | OperatorAuditEntry]:
    if tenant is None:
        return list(OperatorAuditEntry.objects.filter(**filters).order_by("seq"))
    with tenant_context(tenant):
        return list(AuditEntry.objects.filter(**filters).order_by("seq"))


def _user_with_role(world: TenantWorld, local_part: str, role: str) -> User:
    with tenant_context(world.tenant):
        group = services.create_group(f"{local_part} group")
        services.set_group_roles(group, [role])
        user, _ = services.create_user(
            local_part,
            world.name,
            password="Some-Pass-2024z",
            groups=[group],
            must_change_password=False,
        )
        return user


@pytest.fixture
def auditor_client_a(tenant_a: TenantWorld) -> Client:
    return client_for(_user_with_role(tenant_a, "auditor", Role.AUDITOR))


def test_admin_write_is_recorded_with_actor_outcome_and_request_id(
    tenant_a: TenantWorld, admin_client_a: Client
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:user_create"),
        {"local_part": "newbie", "domain": tenant_a.name, "display_name": "New"},
    )
    assert response.status_code == 200 and b"newbie@" in response.content
    (entry,) = _entries(tenant_a.tenant, activity="adminaccess:user_create")
    assert entry.actor == tenant_a.owner.username
    assert entry.actor_type == "user"
    assert entry.success is True
    assert entry.request_id == response["X-Request-ID"]
    assert f"local_part=newbie domain={tenant_a.name}" in entry.message
    # A refused form is a failed write; a write on an object names it.
    admin_client_a.post(reverse("adminaccess:user_create"), {"local_part": "", "domain": ""})
    refused = _entries(tenant_a.tenant, activity="adminaccess:user_create")[-1]
    assert refused.success is False and "form refused" in refused.message
    member_url = reverse("adminaccess:user_edit", kwargs={"user_id": tenant_a.member.pk})
    admin_client_a.post(member_url, {"display_name": "Renamed", "is_active": "on"})
    (edit,) = _entries(tenant_a.tenant, activity="adminaccess:user_edit")
    assert edit.object == f"user_id={tenant_a.member.pk}" and edit.success
    # Reads are not writes: a GET records nothing (but still has a request id).
    before = len(_entries(tenant_a.tenant))
    page = admin_client_a.get(reverse("adminaccess:users"))
    assert len(page["X-Request-ID"]) == 32
    assert len(_entries(tenant_a.tenant)) == before


def test_logins_and_failed_logins(tenant_a: TenantWorld) -> None:
    response = admin_login(Client(), tenant_a.owner.username, "wrong password")
    assert response.status_code == 401
    failed = _entries(tenant_a.tenant, activity="auth.login_failed")
    assert [(e.actor, e.success) for e in failed] == [(tenant_a.owner.username, False)]
    assert failed[0].request_id == response["X-Request-ID"]
    # An unknown user of a known domain: that tenant's chain, with the typed name.
    admin_login(Client(), f"ghost@{tenant_a.name}", "whatever")
    assert _entries(tenant_a.tenant, actor=f"ghost@{tenant_a.name}")[0].activity == (
        "auth.login_failed"
    )
    # A name no tenant knows: the operator chain.
    admin_login(Client(), "nobody@unknown.example", "whatever")
    (op,) = _entries(None, actor="nobody@unknown.example")
    assert op.activity == "auth.login_failed" and not op.success
    # The right password without a role for Admin Access: refused, no signal says so.
    refused = admin_login(Client(), tenant_a.member.username, tenant_a.member_password)
    assert refused.status_code == 403
    (no_access,) = _entries(tenant_a.tenant, actor=tenant_a.member.username)
    assert no_access.activity == "auth.login_failed" and "refused" in no_access.message
    assert no_access.request_id == refused["X-Request-ID"]
    # A sign-in that succeeds.
    ok = admin_login(Client(), tenant_a.owner.username, tenant_a.owner_password)
    assert ok.status_code == 302
    logins = _entries(tenant_a.tenant, activity="auth.login", actor=tenant_a.owner.username)
    assert logins and logins[-1].request_id == ok["X-Request-ID"]


def test_denied_reads_and_writes(
    tenant_a: TenantWorld, tenant_b: TenantWorld, reader_client_a: Client
) -> None:
    assert reader_client_a.get(reverse("adminaccess:users")).status_code == 403
    (denied,) = _entries(tenant_a.tenant, activity="access.denied")
    assert denied.actor == tenant_a.member.username and not denied.success
    assert "adminaccess:users" in denied.object
    response = reader_client_a.post(reverse("adminaccess:user_create"), {"local_part": "x"})
    assert response.status_code == 403
    (write,) = _entries(tenant_a.tenant, activity="adminaccess:user_create")
    assert not write.success and "403" in write.message
    # Tenant B's member asking for tenant A's message: a 404, recorded in B's chain.
    outsider = client_for(tenant_b.member)
    url = reverse("webaccess:message", kwargs={"message_id": tenant_a.message.pk})
    assert outsider.get(url).status_code == 404
    (isolation,) = _entries(tenant_b.tenant, activity="access.denied")
    assert isolation.object == f"webaccess:message message_id={tenant_a.message.pk}"
    assert _entries(tenant_a.tenant, actor=tenant_b.member.username) == []


def test_compliance_reading_is_recorded(tenant_a: TenantWorld, reader_client_a: Client) -> None:
    officer = client_for(_user_with_role(tenant_a, "officer", Role.COMPLIANCE))
    message_id = tenant_a.message.pk
    assert officer.get(reverse("webaccess:message", args=[message_id])).status_code == 200
    download = officer.get(reverse("webaccess:download", args=[message_id]))
    assert download.status_code == 200
    entries = _entries(tenant_a.tenant, actor=f"officer@{tenant_a.name}")
    activities = [e.activity for e in entries if e.activity.startswith("message.")]
    assert activities == ["message.view", "message.download"]
    assert entries[-1].object == f"message={message_id} sha256={tenant_a.message.sha256}"
    assert entries[-1].request_id == download["X-Request-ID"]
    # A Reader reading its own mail is not audited.
    assert reader_client_a.get(reverse("webaccess:message", args=[message_id])).status_code == 200
    assert not _entries(tenant_a.tenant, activity="message.view", actor=tenant_a.member.username)


def test_cli_commands_that_change_data(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real Django entry point closes the database connections when a command ends
    # (the test's transaction with them): run the command lines through call_command.
    def execute(argv: list[str]) -> None:
        try:
            call_command(*argv[1:])
        except CommandError as exc:
            raise SystemExit(exc.returncode) from exc

    monkeypatch.setattr("django.core.management.execute_from_command_line", execute)
    cli.main(["user", "reset-mfa", tenant_a.member.username])
    (entry,) = _entries(tenant_a.tenant, activity="cli.user")
    assert entry.actor_type == "cli" and entry.success
    assert entry.object == f"user reset-mfa {tenant_a.member.username}"
    with pytest.raises(SystemExit):
        cli.main(["reindex", "--tenant", "no-such-tenant"])
    (failed,) = _entries(None, activity="cli.reindex")
    assert not failed.success and "exit status" in failed.message
    cli.main(["tenant", "list"])  # reads only
    assert _entries(None, activity="cli.tenant") == []
    assert redacted(["user", "--password", "s3cret", "--api-key=abc", "x"]) == (
        "user --password *** --api-key=*** x"
    )


def test_auditor_pages(
    tenant_a: TenantWorld, auditor_client_a: Client, admin_client_a: Client
) -> None:
    admin_client_a.post(
        reverse("adminaccess:user_create"), {"local_part": "zed", "domain": tenant_a.name}
    )
    page = auditor_client_a.get(
        reverse("adminaccess:audit_log"), {"activity": "adminaccess:user_create"}
    )
    assert page.status_code == 200
    assert (
        b'data-testid="audit-entry"' in page.content and b"adminaccess:user_create" in page.content
    )
    assert admin_client_a.get(reverse("adminaccess:audit_log")).status_code == 403

    valid = auditor_client_a.get(reverse("adminaccess:audit_validation"))
    assert b'data-intact="yes"' in valid.content
    with tenant_context(tenant_a.tenant):
        victim = AuditEntry.objects.get(activity="adminaccess:user_create")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE compliance_auditentry SET actor = 'someone else' WHERE id = %s", [victim.pk]
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    broken = auditor_client_a.get(reverse("adminaccess:audit_validation"))
    assert b'data-intact="no"' in broken.content
    assert f'data-seq="{victim.seq}"'.encode() in broken.content

    day = victim.time.date().isoformat()
    export = auditor_client_a.get(reverse("adminaccess:audit_export"), {"day": day})
    assert export["Content-Disposition"] == f'attachment; filename="audit-{day}.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert "adminaccess:user_create" in [r[4] for r in rows[1:]]
    form = auditor_client_a.get(reverse("adminaccess:audit_export"))
    assert form.status_code == 200 and day.encode() in form.content
    zipped = auditor_client_a.get(reverse("adminaccess:audit_export"), {"first": day, "last": day})
    assert zipped["Content-Type"] == "application/zip"


def test_api_writes_are_recorded_under_the_named_actor(tenant_a: TenantWorld) -> None:
    """The API (to come) authenticates by key, not session: it names the actor with
    ``audit.set_actor`` and the middleware records every write, refused ones too."""

    def api_view(request: HttpRequest) -> HttpResponse:
        if request.headers.get("Authorization") == "Bearer good":
            audit.set_actor(request, "key:reporting", tenant_a.tenant)
            return HttpResponse(status=201)
        return HttpResponse(status=401)

    middleware = AuditMiddleware(api_view)
    factory = RequestFactory()
    ok = middleware(factory.post("/api/v1/mailboxes/", HTTP_AUTHORIZATION="Bearer good"))
    refused = middleware(factory.post("/api/v1/mailboxes/", {"name": "x"}))
    (entry,) = _entries(tenant_a.tenant, actor="key:reporting")
    assert (entry.actor_type, entry.success, entry.activity) == ("api", True, "/api/v1/mailboxes/")
    assert entry.request_id == ok["X-Request-ID"]
    (anonymous,) = _entries(None, request_id=refused["X-Request-ID"])
    assert not anonymous.success and "401" in anonymous.message and "name=x" in anonymous.message
