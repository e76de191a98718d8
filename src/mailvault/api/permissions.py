"""Which key may call which endpoint: the role table of ``web/access.py`` for keys.

Admin endpoints need Admin, the audit log Auditor, search Reader or Compliance (the scope
is the key's user's, like in Web Access); operator endpoints need an operator key.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from mailvault.accounts.roles import Role
from mailvault.api.principal import OperatorPrincipal, TenantKeyPrincipal


class _RolePermission(BasePermission):
    roles: frozenset[str] = frozenset()
    message = "This API key lacks the role this endpoint needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not isinstance(user, TenantKeyPrincipal):
            self.message = "This endpoint needs a tenant API key (mvk_…)."
            return False
        if not user.roles & self.roles:
            names = ", ".join(sorted(Role(r).label for r in self.roles))
            self.message = f"This endpoint needs an API key with the role {names}."
            return False
        return True


class IsAdmin(_RolePermission):
    roles = frozenset({Role.ADMIN})


class IsAuditor(_RolePermission):
    roles = frozenset({Role.AUDITOR})


class IsAdminOrAuditor(_RolePermission):
    roles = frozenset({Role.ADMIN, Role.AUDITOR})


class CanSearch(_RolePermission):
    roles = frozenset({Role.READER, Role.COMPLIANCE})


class IsAdminOrCompliance(_RolePermission):
    roles = frozenset({Role.ADMIN, Role.COMPLIANCE})


class IsCompliance(_RolePermission):
    roles = frozenset({Role.COMPLIANCE})


class IsOperator(BasePermission):
    message = "This endpoint needs an operator API key (mvo_…)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, OperatorPrincipal)
