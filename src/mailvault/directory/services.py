"""Every write to directory service configurations, and running a synchronization.

A run reads the whole directory (or, for Entra after the first run, its changes through
delta links) before it writes anything, then applies all of it in one transaction with
the new delta links: a run that fails while reading changes nothing, and the next run
starts from the last links that were applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from mailvault.accounts.models import User
from mailvault.accounts.secrets import Secret
from mailvault.directory.models import DirectoryService, SyncedObject
from mailvault.directory.sealing import seal
from mailvault.jobs.models import Schedule

log = logging.getLogger("mailvault.directory")

PROCESS_TYPE = "directory.sync"
CONFIG_TYPE = "directory.directoryservice"

# Other configurations that name a directory service register a check here
# (archiving profiles, folder synchronizations): each returns the names of its
# configurations that use the service.
USAGE_CHECKS: list[Callable[[DirectoryService], list[str]]] = []


class DirectoryError(ValueError):
    """A change Mailvault refuses or a run that cannot go on, with a message for people."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class LdapSettings:
    host: str = ""
    port: int | None = None
    security: str = DirectoryService.Security.STARTTLS
    accept_all_certificates: bool = False
    ca_pem: str = ""
    bind_dn: str = ""
    bind_password: str | None = None  # None: keep the stored one
    secret: Secret | None = None  # basic credentials instead of bind DN and password
    base_dn: str = ""
    user_filter: str = ""
    group_filter: str = ""
    attributes: dict[str, str] | None = None


@dataclass
class Constraints:
    only_group_names: list[str]
    enabled_only: bool = True
    mailbox_only: bool = True
    remove_missing: bool = True


def _check_name(name: str, service: DirectoryService | None) -> str:
    name = name.strip()
    if not name:
        raise DirectoryError("A directory service needs a name.", "name")
    others = DirectoryService.objects.filter(name__iexact=name)
    if service is not None:
        others = others.exclude(pk=service.pk)
    if others.exists():
        raise DirectoryError(f"A directory service named {name} exists already.", "name")
    return name


def _apply_ldap(service: DirectoryService, ldap: LdapSettings) -> None:
    if not ldap.host.strip():
        raise DirectoryError("Enter the LDAP server's host name.", "ldap_host")
    if not ldap.base_dn.strip():
        raise DirectoryError("Enter the base DN to search.", "ldap_base_dn")
    service.ldap_host = ldap.host.strip()
    service.ldap_port = ldap.port
    service.ldap_security = ldap.security
    service.ldap_accept_all_certificates = ldap.accept_all_certificates
    service.ldap_ca_pem = ldap.ca_pem.strip()
    service.ldap_bind_dn = ldap.bind_dn.strip()
    if ldap.secret is not None and ldap.secret.kind != Secret.Kind.BASIC:
        raise DirectoryError("Choose a secret with basic credentials.", "ldap_secret")
    service.ldap_secret = ldap.secret
    service.ldap_base_dn = ldap.base_dn.strip()
    service.ldap_user_filter = ldap.user_filter.strip()
    service.ldap_group_filter = ldap.group_filter.strip()
    if ldap.attributes is not None:
        service.ldap_attributes = {k: v for k, v in ldap.attributes.items() if v}


@transaction.atomic
def save_service(
    name: str,
    kind: str,
    constraints: Constraints,
    *,
    service: DirectoryService | None = None,
    entra_tenant_id: str = "",
    ldap: LdapSettings | None = None,
) -> DirectoryService:
    """Create or update; the type of an existing service never changes."""
    creating = service is None
    if service is None:
        if kind not in DirectoryService.Kind.values:
            raise DirectoryError("Choose the type of directory.", "kind")
        service = DirectoryService(kind=kind)
    elif kind and kind != service.kind:
        raise DirectoryError("The type of a directory service cannot be changed.", "kind")
    service.name = _check_name(name, None if creating else service)
    service.only_group_names = [n.strip() for n in constraints.only_group_names if n.strip()]
    service.enabled_only = constraints.enabled_only
    service.mailbox_only = constraints.mailbox_only
    service.remove_missing = constraints.remove_missing
    if service.is_entra:
        tid = entra_tenant_id.strip()
        if tid and tid != service.entra_tenant_id:
            service.entra_tenant_id = tid
    else:
        _apply_ldap(service, ldap or LdapSettings())
    service.save()
    if not service.is_entra and ldap is not None and ldap.bind_password is not None:
        service.ldap_bind_password_sealed = seal(ldap.bind_password, context=f"ldap:{service.pk}")
        service.save(update_fields=["ldap_bind_password_sealed"])
    return service


def users_of(service: DirectoryService) -> QuerySet[User]:
    return User.objects.filter(directory_link__service=service)


def usage(service: DirectoryService) -> list[str]:
    """Why the service cannot be deleted now (empty: it can)."""
    reasons = []
    schedules = Schedule.objects.filter(config_type=CONFIG_TYPE, config_id=str(service.pk))
    if schedules.exists():
        reasons.append(f"{schedules.count()} schedule(s) run its synchronization")
    # Every configuration with a foreign key to the service (archiving profiles, folder
    # synchronizations), found by the relation itself so none is forgotten.
    own = {"directory.syncedobject", "directory.directorystate"}
    reported: set[str] = set()
    for rel in DirectoryService._meta.related_objects:
        model = rel.related_model
        if not isinstance(model, type) or model._meta.label_lower in own:
            continue
        manager = getattr(model, "unscoped", None) or model._default_manager
        names = [str(o) for o in manager.filter(**{rel.field.name: service})[:5]]
        if names:
            label = str(model._meta.verbose_name_plural)
            reasons.append(f"{label} use it ({', '.join(names)})")
            reported.add(str(model._meta.verbose_name).lower())
    for check in USAGE_CHECKS:
        reasons.extend(r for r in check(service) if not r.lower().startswith(tuple(reported)))
    return reasons


@transaction.atomic
def delete_service(service: DirectoryService) -> int:
    """Delete the service and its synchronized users (refused while in use); returns
    how many users went. Groups and domains it created go too; archive mailboxes and
    the mail in them stay."""
    reasons = usage(service)
    if reasons:
        raise DirectoryError(
            f"{service.name} is in use: " + "; ".join(reasons) + ". Remove those first."
        )
    links = SyncedObject.objects.filter(service=service)
    users = User.objects.filter(directory_link__in=links)
    count = users.count()
    users.delete()
    from mailvault.accounts.models import Domain, Group

    Group.objects.filter(directory_link__in=links).delete()
    for domain in Domain.objects.filter(directory_link__in=links):
        if not User.objects.filter(username__endswith=f"@{domain.name}").exists():
            domain.delete()
    service.delete()
    from mailvault.accounts.services import LastAdminError, active_admins

    if not active_admins():
        raise LastAdminError()
    return count
