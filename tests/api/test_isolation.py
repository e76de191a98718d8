"""Every API endpoint, asked for another tenant's objects with a tenant's key, answers
404 exactly as for ids that exist nowhere, and changes nothing; lists show only the
key's tenant. The routes are discovered from the URLconf, like tests/test_url_isolation.py:
a new API URL with an unknown id kind or an unmapped list fails here until it is added."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from factories import TenantWorld
from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.secrets import Secret, create_secret
from mailvault.accounts.services import set_group_roles
from mailvault.archive.models import Mailbox
from mailvault.compliance.holds import create_hold
from mailvault.compliance.models_audit import AuditEntry
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy
from mailvault.compliance.retention import ensure_default_policy
from mailvault.directory.models import DirectoryService
from mailvault.ingestion.file_import import PROCESS_TYPE as FILE_IMPORT
from mailvault.ingestion.models import ImportConfiguration
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context

from .conftest import api_client, make_key

pytestmark = pytest.mark.django_db


def _import_config(w: TenantWorld) -> ImportConfiguration:
    with tenant_context(w.tenant):
        config, _ = ImportConfiguration.objects.get_or_create(
            name="api isolation", defaults={"mailbox": w.mailbox, "path": "/srv/api"}
        )
    return config


def _schedule(w: TenantWorld) -> Schedule:
    config = _import_config(w)
    with tenant_context(w.tenant):
        schedule, _ = Schedule.objects.get_or_create(
            process_type=FILE_IMPORT,
            config_type=ImportConfiguration._meta.label_lower,
            config_id=str(config.pk),
            defaults={"kind": "daily", "at_time": "02:30", "time_zone": "UTC"},
        )
    return schedule


def _job_run(w: TenantWorld) -> JobRun:
    config = _import_config(w)
    with tenant_context(w.tenant):
        run, _ = JobRun.objects.get_or_create(
            process_type=FILE_IMPORT,
            config_type=ImportConfiguration._meta.label_lower,
            config_id=str(config.pk),
            defaults={"config_name": config.name, "status": JobRun.Status.RUNNING},
        )
    return run


def _endpoint(w: TenantWorld) -> JournalEndpoint:
    with tenant_context(w.tenant):
        endpoint, _ = JournalEndpoint.objects.get_or_create(
            name=f"journal of {w.name}", defaults={"mailbox": w.mailbox}
        )
    return endpoint


def _secret(w: TenantWorld) -> Secret:
    with tenant_context(w.tenant):
        secret = Secret.objects.filter(name="api isolation").first()
        if secret is None:
            secret = create_secret("api isolation", Secret.Kind.BASIC, username="u", password="p")
    return secret


def _policy(w: TenantWorld) -> RetentionPolicy:
    with tenant_context(w.tenant):
        return ensure_default_policy()


def _hold(w: TenantWorld) -> LegalHold:
    with tenant_context(w.tenant):
        hold = LegalHold.objects.filter(name="api isolation").first()
        if hold is None:
            hold = create_hold(name="api isolation", kind="tenant", reason="test", actor=w.owner)
    return hold


def _export(w: TenantWorld) -> ExportJob:
    with tenant_context(w.tenant):
        job, _ = ExportJob.objects.get_or_create(
            requested_by=w.owner, source="mailbox", defaults={"mailbox": w.mailbox}
        )
    return job


def _directory(w: TenantWorld) -> DirectoryService:
    with tenant_context(w.tenant):
        service, _ = DirectoryService.objects.get_or_create(
            name=f"directory of {w.name}",
            defaults={"kind": "ldap", "ldap_host": "127.0.0.1", "ldap_base_dn": "dc=x"},
        )
    return service


def _profile(w: TenantWorld) -> ArchivingProfile:
    with tenant_context(w.tenant):
        profile, _ = ArchivingProfile.objects.get_or_create(
            name=f"imap of {w.name}",
            defaults={"type": "imap", "host": "127.0.0.1", "mailbox": w.mailbox},
        )
    return profile


def _folder_sync(w: TenantWorld) -> FolderSynchronization:
    with tenant_context(w.tenant):
        sync, _ = FolderSynchronization.objects.get_or_create(
            name=f"folders of {w.name}",
            defaults={"type": "m365", "mode": "multiple", "directory_service": _directory(w)},
        )
    return sync


def _key(w: TenantWorld) -> str:
    """A key of the tenant's owner holding Admin, Auditor and Compliance (every area)."""
    with tenant_context(w.tenant):
        group, _ = Group.objects.get_or_create(name="API auditors")
        group.members.add(w.owner)
        set_group_roles(group, ["auditor", "compliance"])
    w.owner._roles_cache = None  # type: ignore[attr-defined]
    return make_key(w, w.owner, ["admin", "auditor", "compliance"])


OBJECT_KWARGS: dict[str, tuple[type[models.Model], Callable[[TenantWorld], models.Model]]] = {
    "user_id": (User, lambda w: w.member),
    "group_id": (Group, lambda w: w.reader_group),
    "domain_id": (Domain, lambda w: w.manual_domain),
    "mailbox_id": (Mailbox, lambda w: w.mailbox),
    "endpoint_id": (JournalEndpoint, _endpoint),
    "schedule_id": (Schedule, _schedule),
    "run_id": (JobRun, _job_run),
    "secret_id": (Secret, _secret),
    "policy_id": (RetentionPolicy, _policy),
    "hold_id": (LegalHold, _hold),
    "export_id": (ExportJob, _export),
    "service_id": (DirectoryService, _directory),
    "profile_id": (ArchivingProfile, _profile),
    "sync_id": (FolderSynchronization, _folder_sync),
}
# List endpoints -> the model whose ids they list.
LISTS: dict[str, type[models.Model]] = {
    "api:users": User,
    "api:groups": Group,
    "api:domains": Domain,
    "api:mailboxes": Mailbox,
    "api:journal_endpoints": JournalEndpoint,
    "api:schedules": Schedule,
    "api:jobs": JobRun,
    "api:secrets": Secret,
    "api:audit_log": AuditEntry,
    "api:retention_policies": RetentionPolicy,
    "api:legal_holds": LegalHold,
    "api:exports": ExportJob,
    "api:directory_services": DirectoryService,
    "api:archiving_profiles": ArchivingProfile,
    "api:folder_syncs": FolderSynchronization,
}
# Tenant-wide lists that hold no tenant objects, and the documents.
NOT_TENANT_DATA = {"api:roles", "api:process_types", "api:schema", "api:docs", "api:redoc"}


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    kwargs: tuple[str, ...]
    methods: tuple[str, ...]

    def url(self, values: dict[str, Any]) -> str:
        return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), self.route)


def _walk(patterns: list[URLPattern | URLResolver], prefix: str, namespace: str) -> list[Route]:
    routes: list[Route] = []
    for entry in patterns:
        assert isinstance(entry.pattern, RoutePattern)
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            routes.extend(_walk(entry.url_patterns, route, inner))
            continue
        cls = getattr(entry.callback, "cls", None)
        if not route.startswith("api/") or cls is None:
            continue  # not the API, or the catch-all 404
        methods = tuple(m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m))
        kwargs = tuple(re.findall(r"<(?:\w+:)?(\w+)>", route))
        routes.append(Route(f"{namespace}{entry.name}", route, kwargs, methods))
    return routes


ROUTES = _walk(get_resolver().url_patterns, "", "")
TENANT_ROUTES = [r for r in ROUTES if r.name.startswith("api:")]
OPERATOR_ROUTES = [r for r in ROUTES if r.name.startswith("api-operator:")]
OBJECT_CASES = [(r, m) for r in TENANT_ROUTES if r.kwargs for m in r.methods]
LIST_ROUTES = [r for r in TENANT_ROUTES if not r.kwargs and "get" in r.methods]


def _snapshot(world: TenantWorld) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kwarg, (model, pick) in OBJECT_KWARGS.items():
        row = model._base_manager.get(pk=pick(world).pk)
        out[kwarg] = model_to_dict(row, exclude=[f.name for f in model._meta.many_to_many])
    return out


def _call(client: Client, method: str, url: str) -> Any:
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, data={}, content_type="application/json")


def test_routes_were_discovered() -> None:
    names = {r.name for r in ROUTES}
    assert {"api:users", "api:user_detail", "api:job_cancel", "api-operator:tenants"} <= names
    assert len(OBJECT_CASES) >= 15


def test_every_id_kind_and_list_is_mapped() -> None:
    kinds = {k for r in TENANT_ROUTES for k in r.kwargs}
    assert kinds <= set(OBJECT_KWARGS), f"unmapped API URL kwargs: {kinds - set(OBJECT_KWARGS)}"
    lists = {r.name for r in LIST_ROUTES} - NOT_TENANT_DATA - {"api:search"}
    assert lists <= set(LISTS), f"unmapped API lists: {lists - set(LISTS)}"


@pytest.mark.parametrize(
    ("route", "method"), OBJECT_CASES, ids=[f"{r.name}-{m}" for r, m in OBJECT_CASES]
)
def test_foreign_ids_are_404_and_change_nothing(
    tenant_a: TenantWorld, tenant_b: TenantWorld, route: Route, method: str
) -> None:
    client = api_client(_key(tenant_a))
    foreign = {k: OBJECT_KWARGS[k][1](tenant_b).pk for k in route.kwargs}
    before = _snapshot(tenant_b), _snapshot(tenant_a)

    response = _call(client, method, route.url(foreign))

    assert response.status_code == 404, (
        f"{method.upper()} {route.url(foreign)}: {response.status_code}"
    )
    assert response.json()["error"]["code"] == "not_found"
    missing = {
        k: OBJECT_KWARGS[k][0]._base_manager.order_by("-pk")[0].pk + 1000 for k in route.kwargs
    }
    again = _call(client, method, route.url(missing))
    assert (
        again.status_code == 404
        and again.json()["error"]["message"] == response.json()["error"]["message"]
    )
    assert (_snapshot(tenant_b), _snapshot(tenant_a)) == before


@pytest.mark.parametrize("route", [r for r in TENANT_ROUTES if r.kwargs], ids=lambda r: r.name)
def test_own_ids_are_found(tenant_a: TenantWorld, route: Route) -> None:
    """The same URLs with the tenant's own ids are no 404: the refusals above come from
    the tenant boundary."""
    client = api_client(_key(tenant_a))
    own = {k: OBJECT_KWARGS[k][1](tenant_a).pk for k in route.kwargs}
    method = "get" if "get" in route.methods else "post"
    response = _call(client, method, route.url(own))
    assert response.status_code not in (401, 403, 404), (route.url(own), response.content)
    assert response.status_code < 500


@pytest.mark.parametrize("route", LIST_ROUTES, ids=lambda r: r.name)
def test_lists_hold_only_the_keys_tenant(
    tenant_a: TenantWorld, tenant_b: TenantWorld, route: Route
) -> None:
    for kwarg in OBJECT_KWARGS:  # every kind of object exists in both tenants
        OBJECT_KWARGS[kwarg][1](tenant_a), OBJECT_KWARGS[kwarg][1](tenant_b)
    token = (
        make_key(tenant_a, tenant_a.member, ["reader"])
        if route.name == "api:search"
        else _key(tenant_a)
    )
    # Both tenants have audit entries (writes through the API are recorded).
    for w in (tenant_a, tenant_b):
        api_client(_key(w)).post(
            "/api/v1/domains/",
            data={"name": f"audit.{w.name}.example"},
            content_type="application/json",
        )
    url = "/" + route.route + ("?q=hello" if route.name == "api:search" else "")
    response = api_client(token).get(url)
    assert response.status_code == 200
    if route.name == "api:search":
        hits = response.json()["results"]
        assert hits, "tenant A's member finds its own message"
        assert {h["message_id"] for h in hits} == {tenant_a.message.pk}
        return
    if route.name in NOT_TENANT_DATA:
        return
    model = LISTS[route.name]
    ids = {item["id"] for item in response.json()["results"]}
    own = set(model._base_manager.filter(tenant=tenant_a.tenant).values_list("pk", flat=True))
    assert ids and ids <= own, f"{url} lists ids of another tenant"


@pytest.mark.parametrize(
    ("route", "method"),
    [(r, m) for r in OPERATOR_ROUTES for m in r.methods],
    ids=[f"{r.name}-{m}" for r in OPERATOR_ROUTES for m in r.methods],
)
def test_tenant_keys_cannot_use_the_operator_api(
    tenant_a: TenantWorld, tenant_b: TenantWorld, route: Route, method: str
) -> None:
    client = api_client(make_key(tenant_a))
    response = _call(client, method, route.url({"tenant_id": tenant_b.tenant.pk}))
    assert response.status_code == 403
    assert "operator" in response.json()["error"]["message"]
    assert tenant_b.tenant.__class__.objects.filter(pk=tenant_b.tenant.pk, status="active").exists()
