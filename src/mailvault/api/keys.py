"""Creating, checking and revoking API keys (tenant keys and operator keys).

A key reads ``mvk_<8 hex>_<43 url-safe chars>`` (operator: ``mvo_…``). The first part is
the prefix, stored in clear to find the row; the whole key is hashed with SHA-256 and
compared in constant time. The secret carries 256 random bits, so a fast hash is enough
(no password stretching is needed for a key nobody chose).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.api.models import ApiKey, OperatorApiKey

TENANT_KEY_TAG = "mvk"
OPERATOR_KEY_TAG = "mvo"
# last_used_at is written at most this often per key (a busy key must not write per call).
LAST_USED_GRANULARITY = timedelta(minutes=1)


class ApiKeyError(ValueError):
    """A key change Mailvault refuses, with a message for the admin."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(tag: str) -> tuple[str, str]:
    prefix = f"{tag}_{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _split(token: str, tag: str) -> str | None:
    """The prefix of a well-formed token of kind ``tag``, else None."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != tag or len(parts[1]) != 8:
        return None
    return f"{parts[0]}_{parts[1]}"


def prefix_of(token: str) -> str:
    """The identifying prefix of a key (``mvk_1a2b3c4d``)."""
    return "_".join(token.split("_")[:2])


# --- tenant keys ----------------------------------------------------------------------


def grantable_roles(user: User) -> list[str]:
    return [r.value for r in Role if r.value in user.roles]


@transaction.atomic
def create_key(
    name: str, user: User, roles: Iterable[str], *, created_by: str = ""
) -> tuple[ApiKey, str]:
    """A new key of the active tenant acting for ``user``; returns it with the clear key
    (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise ApiKeyError("An API key needs a name.")
    wanted = sorted({Role(r).value for r in roles})
    if not wanted:
        raise ApiKeyError("Choose at least one role for the key.")
    missing = set(wanted) - set(user.roles)
    if missing:
        labels = ", ".join(Role(r).label for r in sorted(missing))
        raise ApiKeyError(f"{user} does not hold the role(s) {labels}; a key cannot exceed them.")
    prefix, token = _new_token(TENANT_KEY_TAG)
    key = ApiKey.objects.create(
        name=name[:200],
        user=user,
        roles=wanted,
        prefix=prefix,
        secret_hash=_hash(token),
        created_by=created_by,
    )
    return key, token


def revoke_key(key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def effective_roles(key: ApiKey) -> frozenset[str]:
    """The key's roles that its user still holds (a role taken from the user is taken
    from the key too)."""
    return frozenset(key.roles) & key.user.roles


def _touch(model: type[ApiKey] | type[OperatorApiKey], key: ApiKey | OperatorApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        model._base_manager.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def authenticate_key(token: str) -> ApiKey | None:
    """The live tenant key for ``token``: not revoked, its user active, its tenant
    active. Runs before any tenant is active, hence ``unscoped`` (the key names it)."""
    prefix = _split(token, TENANT_KEY_TAG)
    if prefix is None:
        return None
    key = ApiKey.unscoped.select_related("tenant", "user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(token)):
        return None
    if key.revoked_at is not None or not key.user.is_active or not key.tenant.is_active:
        return None
    _touch(ApiKey, key)
    return key


# --- operator keys --------------------------------------------------------------------


def create_operator_key(name: str) -> tuple[OperatorApiKey, str]:
    name = name.strip()
    if not name:
        raise ApiKeyError("An API key needs a name.")
    prefix, token = _new_token(OPERATOR_KEY_TAG)
    key = OperatorApiKey.objects.create(name=name[:200], prefix=prefix, secret_hash=_hash(token))
    return key, token


def revoke_operator_key(prefix: str) -> OperatorApiKey:
    key = OperatorApiKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise ApiKeyError(f"No operator key {prefix}.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def authenticate_operator_key(token: str) -> OperatorApiKey | None:
    prefix = _split(token, OPERATOR_KEY_TAG)
    if prefix is None:
        return None
    key = OperatorApiKey.objects.filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(token)):
        return None
    if key.revoked_at is not None:
        return None
    _touch(OperatorApiKey, key)
    return key
