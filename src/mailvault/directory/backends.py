"""Sign-in with the directory's password for users synchronized from LDAP / Active
Directory: the password is tried in a bind as the user's entry and never stored."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from mailvault.accounts.backends import TenantUserBackend, find_user
from mailvault.accounts.models import User
from mailvault.tenancy.context import tenant_context

log = logging.getLogger("mailvault.directory")


class LdapDirectoryBackend(TenantUserBackend):
    """Answers only for users synchronized from an LDAP directory service; every other
    user is the password backend's (their sessions are restored by the same
    ``get_user``). A directory that cannot be reached refuses the sign-in."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        from mailvault.directory import ldap
        from mailvault.directory.signin import ldap_account

        if not username or not password:
            return None
        user = find_user(username)
        if user is None or user.source != User.Source.DIRECTORY:
            return None
        link = ldap_account(user)
        if link is None or not self.user_can_authenticate(user):
            return None
        with tenant_context(user.tenant):  # the bind secret is sealed with the tenant key
            try:
                accepted = ldap.verify_password(link.service, link.external_id, password)
            except ldap.LdapError as exc:
                log.warning("LDAP sign-in of %s: %s", user.username, exc)
                return None
        return user if accepted else None
