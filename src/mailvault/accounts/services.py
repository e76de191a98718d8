"""Every write to users, groups, roles and domains goes through here.

The last-admin guard runs inside the same transaction as each change that could remove
the tenant's last active Admin (deleting or disabling a user, deleting a group, taking a
role from a group, taking a member out of a group): the change is made, the guard checks
the result, and an offending change is rolled back.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from mailvault.accounts.dns import DnsLookupError, get_resolver
from mailvault.accounts.domains import canonical_domain
from mailvault.accounts.models import Domain, Group, GroupRole, User
from mailvault.accounts.passwords import generate_password
from mailvault.accounts.roles import Role
from mailvault.accounts.throttle import normalize_username
from mailvault.tenancy.context import current_tenant

log = logging.getLogger("mailvault.accounts")


class AccountError(ValueError):
    """A change to accounts that Mailvault refuses, with a message for the user."""


class LastAdminError(AccountError):
    def __init__(self) -> None:
        super().__init__(
            "This change would leave the tenant without any active user holding the Admin "
            "role. Give another user Admin first."
        )


def active_admins() -> list[User]:
    return list(
        User.objects.filter(is_active=True, user_groups__grants__role=Role.ADMIN).distinct()
    )


def _ensure_an_admin_remains() -> None:
    if not active_admins():
        raise LastAdminError()


# --- users -----------------------------------------------------------------------------


def _username(local_part: str, domain: str) -> str:
    local_part = local_part.strip()
    if not local_part or "@" in local_part or any(c.isspace() for c in local_part):
        raise AccountError("A user name is a name without spaces or '@'.")
    domain_name = canonical_domain(domain)
    if not Domain.objects.filter(name=domain_name).exists():
        raise AccountError(f"The domain {domain_name} does not belong to this tenant.")
    return normalize_username(f"{local_part}@{domain_name}")


@transaction.atomic
def create_user(
    local_part: str,
    domain: str,
    *,
    display_name: str = "",
    password: str | None = None,
    groups: Iterable[Group] = (),
    must_change_password: bool = True,
    source: str = User.Source.LOCAL,
) -> tuple[User, str]:
    """Create a user; returns it with its initial password (generated when not given)."""
    username = _username(local_part, domain)
    if User.unscoped.filter(username=username).exists():
        raise AccountError(f"A user named {username} exists already.")
    user = User(username=username, display_name=display_name, source=source)
    initial = password if password is not None else generate_password(username=username)
    validate_password(initial, user)
    user.set_password(initial)
    user.must_change_password = must_change_password
    user.rotate_device_trust()
    user.save()
    user.user_groups.set(list(groups))
    log.info("user %s created", username)
    return user, initial


@transaction.atomic
def update_user(user: User, *, display_name: str, is_active: bool, groups: Iterable[Group]) -> User:
    if user.source != User.Source.LOCAL:
        # Synchronized users: only their membership in hand-made groups is editable here.
        synced = set(user.user_groups.filter(source=Group.Source.DIRECTORY))
        user.user_groups.set(synced | {g for g in groups if g.source == Group.Source.LOCAL})
    else:
        user.display_name = display_name
        user.is_active = is_active
        user.save(update_fields=["display_name", "is_active"])
        user.user_groups.set(list(groups))
    _ensure_an_admin_remains()
    return user


@transaction.atomic
def delete_user(user: User) -> None:
    user.delete()
    _ensure_an_admin_remains()
    log.info("user %s deleted", user.username)


@transaction.atomic
def reset_password(user: User) -> str:
    """An admin's "Reset password": a random password, to be changed at next login."""
    password = generate_password(username=user.username)
    user.set_password(password)
    user.must_change_password = True
    user.rotate_device_trust()
    user.save(update_fields=["password", "must_change_password", "device_trust_salt"])
    return password


def change_own_password(user: User, old_password: str, new_password: str) -> None:
    if not user.check_password(old_password):
        raise AccountError("The current password is not correct.")
    if old_password == new_password:
        raise AccountError("The new password must differ from the current one.")
    validate_password(new_password, user)
    user.set_password(new_password)
    user.must_change_password = False
    user.rotate_device_trust()  # devices trusted under the old password must ask again
    user.save(update_fields=["password", "must_change_password", "device_trust_salt"])


def reset_mfa(user: User) -> None:
    user.totp_enabled = False
    user.totp_secret = ""
    user.totp_last_step = 0
    user.rotate_device_trust()
    user.save(update_fields=["totp_enabled", "totp_secret", "totp_last_step", "device_trust_salt"])


# --- groups and roles ------------------------------------------------------------------


def create_group(name: str, *, description: str = "", members: Iterable[User] = ()) -> Group:
    name = name.strip()
    if not name:
        raise AccountError("A group needs a name.")
    if Group.objects.filter(name__iexact=name).exists():
        raise AccountError(f"A group named {name} exists already.")
    with transaction.atomic():
        group = Group.objects.create(name=name, description=description)
        group.members.set(list(members))
    return group


@transaction.atomic
def update_group(group: Group, *, name: str, description: str, members: Iterable[User]) -> Group:
    if group.source == Group.Source.LOCAL:
        name = name.strip()
        if not name:
            raise AccountError("A group needs a name.")
        if Group.objects.filter(name__iexact=name).exclude(pk=group.pk).exists():
            raise AccountError(f"A group named {name} exists already.")
        group.name = name
        group.description = description
        group.save(update_fields=["name", "description"])
        group.members.set(list(members))
    _ensure_an_admin_remains()
    return group


@transaction.atomic
def set_group_roles(group: Group, roles: Iterable[str]) -> None:
    wanted: set[str] = {Role(r).value for r in roles}
    GroupRole.objects.filter(group=group).exclude(role__in=wanted).delete()
    for role in wanted - group.role_set:
        GroupRole.objects.create(group=group, role=role)
    _ensure_an_admin_remains()


@transaction.atomic
def remove_member(group: Group, user: User) -> None:
    group.members.remove(user)
    _ensure_an_admin_remains()


@transaction.atomic
def delete_group(group: Group) -> None:
    group.delete()
    _ensure_an_admin_remains()


# --- domains ---------------------------------------------------------------------------


_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _is_domain_name(name: str) -> bool:
    """Two or more DNS labels (letters, digits, inner hyphens; IDN allowed)."""
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.split(".")
    return len(labels) >= 2 and len(ascii_name) <= 253 and all(map(_DNS_LABEL.match, labels))


def add_domain(name: str) -> Domain:
    name = canonical_domain(name)
    if not _is_domain_name(name):
        raise AccountError(f"{name or 'An empty name'} is not a domain name.")
    if Domain.unscoped.filter(name=name).exists():
        raise AccountError(f"The domain {name} is already in use.")
    return Domain.objects.create(
        name=name, kind=Domain.Kind.MANUAL, verification_code=secrets.token_hex(16)
    )


def verify_domain(domain: Domain) -> bool:
    """Look for the TXT record; mark the domain verified when it is there."""
    if domain.verified:
        return True
    try:
        records = get_resolver().txt_records(domain.name)
    except DnsLookupError as exc:
        raise AccountError(str(exc)) from exc
    wanted = domain.txt_record.replace(" ", "")
    if any(record.replace(" ", "") == wanted for record in records):
        domain.verified = True
        domain.verified_at = timezone.now()
        domain.save(update_fields=["verified", "verified_at"])
        return True
    return False


def delete_domain(domain: Domain) -> None:
    if not domain.deletable:
        raise AccountError(f"The {domain.get_kind_display().lower()} domain cannot be deleted.")
    if User.objects.filter(username__endswith=f"@{domain.name}").exists():
        raise AccountError(f"Users of {domain.name} exist; delete or rename them first.")
    domain.delete()


def tenant_summary() -> dict[str, int]:
    tenant = current_tenant()
    return {
        "tenant_id": tenant.pk,
        "users": User.objects.count(),
        "groups": Group.objects.count(),
        "domains": Domain.objects.count(),
    }
