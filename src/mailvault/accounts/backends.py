"""Authentication against tenant users: password, active user, active tenant."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from mailvault.accounts.models import User
from mailvault.accounts.throttle import normalize_username
from mailvault.tenancy.context import tenant_context


def find_user(username: str) -> User | None:
    """The user of any tenant with this username, or None. Login is the one place that
    looks across tenants: the username's domain is what selects the tenant."""
    return (
        User.unscoped.select_related("tenant").filter(username=normalize_username(username)).first()
    )


class TenantUserBackend(BaseBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if not username or password is None:
            return None
        user = find_user(username)
        if user is None:
            User().set_password(password)  # same work as a real check: no timing oracle
            return None
        # The user's tenant is active for the check: Django re-saves the password when
        # its hash needs an upgrade, and tenant-owned rows are only written in a tenant.
        with tenant_context(user.tenant):
            if not user.check_password(password) or not self.user_can_authenticate(user):
                return None
        return user

    def user_can_authenticate(self, user: User) -> bool:
        return user.is_active and user.tenant.is_active

    def get_user(self, user_id: int) -> User | None:
        user = User.unscoped.select_related("tenant").filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        return user
