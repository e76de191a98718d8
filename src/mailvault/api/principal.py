"""Who calls the API: the object a valid key puts on ``request.user``.

It looks enough like a signed-in user for the rest of the stack: ``is_authenticated``,
``tenant`` (which :class:`~mailvault.tenancy.middleware.TenantMiddleware` activates),
``get_username()`` (the audit log's actor) and ``roles``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailvault.accounts.models import User
from mailvault.api.keys import effective_roles
from mailvault.api.models import ApiKey, OperatorApiKey
from mailvault.tenancy.models import Tenant


@dataclass(eq=False)
class TenantKeyPrincipal:
    key: ApiKey
    roles: frozenset[str] = field(default_factory=frozenset)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    must_change_password = False
    is_operator = False

    def __post_init__(self) -> None:
        self.roles = effective_roles(self.key)

    @property
    def tenant(self) -> Tenant:
        return self.key.tenant

    @property
    def user(self) -> User:
        return self.key.user

    @property
    def pk(self) -> int:
        return self.key.pk

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def acting_user(self) -> User:
        """The key's user holding only the key's roles, for services that decide from a
        user's roles (e.g. the search scope): the key never reaches further."""
        user = self.key.user
        user._roles_cache = self.roles
        return user

    def get_username(self) -> str:
        return f"{self.key.user.username} (API key {self.key.prefix})"

    def __str__(self) -> str:
        return self.get_username()


@dataclass(eq=False)
class OperatorPrincipal:
    key: OperatorApiKey

    is_authenticated = True
    is_anonymous = False
    is_active = True
    must_change_password = False
    is_operator = True
    tenant = None
    roles: frozenset[str] = frozenset()

    @property
    def pk(self) -> int:
        return self.key.pk

    def has_role(self, role: str) -> bool:
        return False

    def get_username(self) -> str:
        return f"operator API key {self.key.prefix} ({self.key.name})"

    def __str__(self) -> str:
        return self.get_username()
