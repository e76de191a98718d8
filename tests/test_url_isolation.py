"""Every URL of the project, asked for another tenant's objects, answers 404 or 403.

The URL list is not written by hand: it is discovered from ``get_resolver()`` so that the
URLs later issues add are covered the day they appear. A URL taking an id of a kind this
module does not know FAILS (see ``OBJECT_KWARGS``): add the kind there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from factories import TenantWorld, client_for
from mailvault.accounts.models import Domain, Group, GroupRole, User
from mailvault.accounts.secrets import Secret, create_secret, generate_certificate
from mailvault.api.models import ApiKey
from mailvault.archive.models import Mailbox, Message
from mailvault.compliance.models import ApprovalRequest, ExportJob, LegalHold, RetentionPolicy
from mailvault.directory.models import DirectoryService
from mailvault.ingestion.file_import import PROCESS_TYPE as FILE_IMPORT
from mailvault.ingestion.models import ImportConfiguration
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.models import ArchivingProfile, JournalEndpoint
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

ISOLATION_CERT = generate_certificate("isolation")


def _import_config(w: TenantWorld) -> ImportConfiguration:
    """The world's File Import configuration (made on first use; idempotent)."""
    with tenant_context(w.tenant):
        config, _ = ImportConfiguration.objects.get_or_create(
            name="isolation import", defaults={"mailbox": w.mailbox, "path": "/srv/isolation"}
        )
    return config


def _schedule(w: TenantWorld) -> Schedule:
    config = _import_config(w)
    with tenant_context(w.tenant):
        schedule, _ = Schedule.objects.get_or_create(
            process_type=FILE_IMPORT,
            config_type=ImportConfiguration._meta.label_lower,
            config_id=str(config.pk),
            defaults={"kind": "daily", "at_time": "02:30", "time_zone": "Europe/Berlin"},
        )
    return schedule


def _job_run(w: TenantWorld) -> JobRun:
    config = _import_config(w)
    with tenant_context(w.tenant):
        run, _ = JobRun.objects.get_or_create(
            process_type=FILE_IMPORT,
            config_type=ImportConfiguration._meta.label_lower,
            config_id=str(config.pk),
            defaults={"config_name": config.name, "status": JobRun.Status.FINISHED},
        )
    return run


def _journal_endpoint(w: TenantWorld) -> JournalEndpoint:
    """The world's journal endpoint, filing into its mailbox (made on first use)."""
    with tenant_context(w.tenant):
        endpoint, _ = JournalEndpoint.objects.get_or_create(
            name=f"journal of {w.name}", defaults={"mailbox": w.mailbox}
        )
    return endpoint


def _directory_service(w: TenantWorld) -> DirectoryService:
    with tenant_context(w.tenant):
        service, _ = DirectoryService.objects.get_or_create(
            name=f"directory of {w.name}",
            defaults={"kind": DirectoryService.Kind.LDAP, "ldap_host": "127.0.0.1"},
        )
    return service


def _secret(w: TenantWorld) -> Secret:
    """The world's certificate secret (its certificate can be downloaded)."""
    with tenant_context(w.tenant):
        found = Secret.objects.filter(name="isolation secret").first()
        if found is None:
            found = create_secret(
                "isolation secret",
                Secret.Kind.CERTIFICATE,
                certificate_pem=ISOLATION_CERT[0],
                private_key_pem=ISOLATION_CERT[1],
            )
    return found


def _archiving_profile(w: TenantWorld) -> ArchivingProfile:
    secret = _secret(w)
    with tenant_context(w.tenant):
        profile, _ = ArchivingProfile.objects.get_or_create(
            name="isolation profile",
            defaults={
                "type": ArchivingProfile.Type.IMAP,
                "host": "127.0.0.1",
                "address": w.mailbox.primary_address,
                "secret": secret,
                "mailbox": w.mailbox,
            },
        )
    return profile


def _api_key(w: TenantWorld) -> ApiKey:
    from mailvault.api import keys

    with tenant_context(w.tenant):
        key = ApiKey.objects.filter(name="isolation key").first()
        if key is None:
            key, _ = keys.create_key("isolation key", w.owner, ["admin"])
    return key


def _compliance_user(w: TenantWorld) -> User:
    """A Compliance officer of the world (made on first use)."""
    from mailvault.accounts import services as accounts
    from mailvault.accounts.roles import Role

    with tenant_context(w.tenant):
        found = User.objects.filter(username=f"officer@{w.name}").first()
        if found is None:
            group = accounts.create_group("Isolation officers")
            accounts.set_group_roles(group, [Role.COMPLIANCE])
            found, _ = accounts.create_user(
                "officer", w.name, groups=[group], must_change_password=False
            )
    return found


def _retention_policy(w: TenantWorld) -> RetentionPolicy:
    with tenant_context(w.tenant):
        policy, _ = RetentionPolicy.objects.get_or_create(
            name="isolation policy", defaults={"period_days": 3650}
        )
    return policy


def _legal_hold(w: TenantWorld) -> LegalHold:
    with tenant_context(w.tenant):
        hold, _ = LegalHold.objects.get_or_create(
            name="isolation hold",
            defaults={
                "kind": LegalHold.Kind.MAILBOX,
                "mailbox": w.mailbox,
                "reason": "isolation",
                "created_by_name": "test",
            },
        )
    return hold


def _approval(w: TenantWorld) -> ApprovalRequest:
    with tenant_context(w.tenant):
        found, _ = ApprovalRequest.objects.get_or_create(
            reason="isolation approval",
            defaults={
                "kind": ApprovalRequest.Kind.DELETE,
                "message_ids": [w.message.pk],
                "requested_by_name": "someone",
            },
        )
    return found


def _export_job(w: TenantWorld) -> ExportJob:
    officer = _compliance_user(w)
    with tenant_context(w.tenant):
        job, _ = ExportJob.objects.get_or_create(
            requested_by=officer,
            defaults={"source": ExportJob.Source.MAILBOX, "mailbox": w.mailbox},
        )
    return job


def _folder_sync(w: TenantWorld) -> FolderSynchronization:
    with tenant_context(w.tenant):
        found, _ = FolderSynchronization.objects.get_or_create(
            name="isolation folder sync",
            defaults={
                "type": FolderSynchronization.Type.M365,
                "mode": FolderSynchronization.Mode.SINGLE,
                "address": w.mailbox.primary_address,
                "mailbox": w.mailbox,
            },
        )
    return found


# kwarg name -> (model, the object of that kind a tenant's world holds).
# A new URL taking a new kind of id needs a line here; the tests fail until it has one.
OBJECT_KWARGS: dict[str, tuple[type[models.Model], Callable[[TenantWorld], models.Model]]] = {
    "user_id": (User, lambda w: w.member),
    "group_id": (Group, lambda w: w.reader_group),
    "domain_id": (Domain, lambda w: w.manual_domain),
    "mailbox_id": (Mailbox, lambda w: w.mailbox),
    "message_id": (Message, lambda w: w.message),
    "config_id": (ImportConfiguration, _import_config),
    "schedule_id": (Schedule, _schedule),
    "run_id": (JobRun, _job_run),
    "endpoint_id": (JournalEndpoint, _journal_endpoint),
    "service_id": (DirectoryService, _directory_service),
    "key_id": (ApiKey, _api_key),
    "secret_id": (Secret, _secret),
    "profile_id": (ArchivingProfile, _archiving_profile),
    "policy_id": (RetentionPolicy, _retention_policy),
    "hold_id": (LegalHold, _legal_hold),
    "approval_id": (ApprovalRequest, _approval),
    "export_id": (ExportJob, _export_job),
    "folder_sync_id": (FolderSynchronization, _folder_sync),
}

# kwargs that are no object ids, with a valid value each.
PLAIN_KWARGS: dict[str, Callable[[], str]] = {
    "slug": lambda: "some-section",  # every menu section is built: any slug will do
    "index": lambda: "1",  # leaf part 1 of the world message is its attachment
    # The schedule dialog's process type; its config_id is the File Import configuration.
    "process_type": lambda: FILE_IMPORT,
}

# Pages anybody may open without signing in.
PUBLIC_URL_NAMES = {"adminaccess:login", "webaccess:login"}


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the route itself when unnamed
    route: str  # "adminaccess/users/<int:user_id>/"
    kwargs: tuple[str, ...]

    def build(self, values: dict[str, Any]) -> str:
        def substitute(match: re.Match[str]) -> str:
            return str(values[match.group(2)])

        return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", substitute, self.route)


def _walk(patterns: list[URLPattern | URLResolver], prefix: str, namespace: str) -> list[Route]:
    routes: list[Route] = []
    for entry in patterns:
        pattern = entry.pattern
        if not isinstance(pattern, RoutePattern):
            raise AssertionError(
                f"{prefix}{pattern} is a regular-expression URL; this test builds URLs from "
                "path() routes only. Use path() or teach test_url_isolation.py the regex."
            )
        route = prefix + str(pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            routes.extend(_walk(entry.url_patterns, route, inner))
        else:
            name = f"{namespace}{entry.name}" if entry.name else route
            kwargs = tuple(m.group(2) for m in re.finditer(r"<(?:(\w+):)?(\w+)>", route))
            routes.append(Route(name, route, kwargs))
    return routes


# The management API (/api/) answers keys, not sessions: tests/api/test_isolation.py walks
# its routes the same way with tenant API keys.
ROUTES = [r for r in _walk(get_resolver().url_patterns, "", "") if not r.route.startswith("api/")]
OBJECT_ROUTES = [r for r in ROUTES if set(r.kwargs) - set(PLAIN_KWARGS)]


def _variants(route: Route) -> list[tuple[Route, frozenset[str]]]:
    """Which kwargs get a foreign id: all of them, and (with several) each one alone."""
    ids = [k for k in route.kwargs if k not in PLAIN_KWARGS]
    variants = [frozenset(ids)]
    if len(ids) > 1:
        variants += [frozenset({k}) for k in ids]
    return [(route, v) for v in variants]


FOREIGN_CASES = [v for r in OBJECT_ROUTES for v in _variants(r)]


def _case_id(case: tuple[Route, frozenset[str]]) -> str:
    route, foreign = case
    return f"{route.name}[foreign={'+'.join(sorted(foreign))}]"


def _model_for(kwarg: str) -> tuple[type[models.Model], Callable[[TenantWorld], models.Model]]:
    if kwarg not in OBJECT_KWARGS:
        pytest.fail(
            f"URL kwarg {kwarg!r} is unknown to tests/test_url_isolation.py: add it to "
            "OBJECT_KWARGS (the model and which object of a tenant to use) or, when it is no "
            "object id, to PLAIN_KWARGS, so that the URL stays covered across tenants."
        )
    return OBJECT_KWARGS[kwarg]


def _values(route: Route, own: TenantWorld, other: TenantWorld, foreign: frozenset[str]) -> dict:
    values: dict[str, Any] = {}
    for kwarg in route.kwargs:
        if kwarg in PLAIN_KWARGS:
            values[kwarg] = PLAIN_KWARGS[kwarg]()
            continue
        _, pick = _model_for(kwarg)
        values[kwarg] = pick(other if kwarg in foreign else own).pk
    return values


def _snapshot(obj: models.Model) -> dict[str, Any]:
    """Everything about a row that a foreign request could change, read across tenants."""
    model = type(obj)
    row = model._base_manager.filter(pk=obj.pk).first()
    assert row is not None, f"{model.__name__} {obj.pk} of the other tenant disappeared"
    data = model_to_dict(row, exclude=[f.name for f in model._meta.many_to_many])
    for m2m in model._meta.many_to_many:
        through = m2m.remote_field.through._base_manager
        data[m2m.name] = sorted(
            through.filter(**{m2m.m2m_field_name(): row.pk}).values_list(
                m2m.m2m_reverse_name(), flat=True
            )
        )
    if isinstance(row, User):
        data["groups"] = sorted(
            Group.members.through._base_manager.filter(user_id=row.pk).values_list(
                "group_id", flat=True
            )
        )
        data["password"] = row.password
    if isinstance(row, Group):
        data["roles"] = sorted(
            GroupRole.unscoped.filter(group_id=row.pk).values_list("role", flat=True)
        )
    return data


def _world_snapshot(world: TenantWorld) -> dict[str, dict[str, Any]]:
    return {kwarg: _snapshot(pick(world)) for kwarg, (_, pick) in OBJECT_KWARGS.items()}


def test_routes_were_discovered() -> None:
    names = {r.name for r in ROUTES}
    # A few known URLs prove the walk reaches into included URLconfs.
    assert {"adminaccess:user_edit", "adminaccess:group_remove_member", "webaccess:home"} <= names
    assert len(OBJECT_ROUTES) >= 8


def test_every_object_kwarg_is_mapped() -> None:
    unknown = {k for r in ROUTES for k in r.kwargs} - set(OBJECT_KWARGS) - set(PLAIN_KWARGS)
    assert not unknown, (
        f"URL kwargs {sorted(unknown)} are unknown to tests/test_url_isolation.py: add each to "
        "OBJECT_KWARGS (or PLAIN_KWARGS when it is no object id)."
    )


def _missing_values(route: Route, own: TenantWorld, foreign: frozenset[str]) -> dict:
    """Like :func:`_values`, with ids that exist in no tenant in place of the foreign ones."""
    values = _values(route, own, own, frozenset())
    for kwarg in foreign:
        model, _ = _model_for(kwarg)
        values[kwarg] = (model._base_manager.order_by("-pk").values_list("pk", flat=True)[0]) + 1000
    return values


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("who", ["admin", "reader"])
@pytest.mark.parametrize("case", FOREIGN_CASES, ids=[_case_id(c) for c in FOREIGN_CASES])
def test_foreign_ids_are_refused(
    shared_world: list[TenantWorld], case: tuple[Route, frozenset[str]], who: str, method: str
) -> None:
    route, foreign = case
    a, b, _ = shared_world
    client = client_for(a.owner if who == "admin" else a.member)
    url = route.build(_values(route, a, b, foreign))
    before_b = _world_snapshot(b)
    before_a = _world_snapshot(a)

    response = getattr(client, method)(url)

    allowed = {403, 404}
    if method == "get":
        # A POST-only view refuses GET before it looks at any id: nothing leaks.
        allowed.add(405)
    assert response.status_code in allowed, (
        f"{method.upper()} {url} as tenant A's {who} with tenant B's "
        f"{'+'.join(sorted(foreign))} answered {response.status_code}"
    )
    body = response.content.decode()
    for kwarg in foreign:
        assert str(OBJECT_KWARGS[kwarg][1](b)) not in body, "the answer names B's object"
    # A foreign id is answered exactly like an id that exists nowhere: no oracle.
    missing_url = route.build(_missing_values(route, a, foreign))
    assert getattr(client, method)(missing_url).status_code == response.status_code
    assert _world_snapshot(b) == before_b, f"{method.upper()} {url} changed tenant B's objects"
    assert _world_snapshot(a) == before_a, f"{method.upper()} {url} changed tenant A's objects"


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=[r.name for r in OBJECT_ROUTES])
def test_own_ids_are_found(shared_world: list[TenantWorld], route: Route) -> None:
    """The same request with the tenant's own ids, by the person the area is for, is
    neither 404 nor 403: the foreign-id refusals above come from the tenant boundary, not
    from a URL that never finds anything."""
    a, b, _ = shared_world
    user = a.member if route.route.startswith("webaccess/") else a.owner
    if route.route.startswith("webaccess/compliance/"):
        user = _compliance_user(a)
    client = client_for(user)
    url = route.build(_values(route, a, b, frozenset()))
    method = "get"
    response = client.get(url)
    if response.status_code == 405:
        # A POST-only view refuses GET before its lookup; POST proves the lookup finds
        # the object (the change it makes is rolled back with the test).
        method = "post"
        response = client.post(url)
    assert response.status_code not in (403, 404), (
        f"{method.upper()} {url} with tenant A's own ids as {user} gave {response.status_code}"
    )
    assert response.status_code < 500


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_anonymous_gets_login_only(
    shared_world: list[TenantWorld], route: Route, method: str
) -> None:
    a, b, _ = shared_world
    url = route.build(_values(route, a, b, frozenset()))
    before = _world_snapshot(a)
    response = getattr(Client(), method)(url, follow=True)
    final_path = response.request["PATH_INFO"]
    if route.name in PUBLIC_URL_NAMES:
        assert response.status_code == 200
    elif response.status_code != 405:  # POST-only views refuse GET before anything else
        assert response.redirect_chain, f"anonymous {method.upper()} {url} was not redirected"
        assert resolve(final_path).view_name in PUBLIC_URL_NAMES, (
            f"anonymous {method.upper()} {url} ended at {final_path}, not at a login page"
        )
    assert _world_snapshot(a) == before
