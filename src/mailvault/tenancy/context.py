"""The current tenant of a request, job or command.

Everything tenant-owned is read and written through :class:`TenantScopedManager`, which
asks this module which tenant is active. A context variable (not a thread-local) follows
the work across ``async``/``sync`` boundaries under ASGI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvault.tenancy.models import Tenant


class NoActiveTenant(RuntimeError):
    """Tenant-owned data was touched outside of any tenant: a programming error."""


_current: ContextVar[Tenant | None] = ContextVar("mailvault_tenant", default=None)


def current_tenant() -> Tenant:
    tenant = _current.get()
    if tenant is None:
        raise NoActiveTenant(
            "No tenant is active. Wrap the work in `tenant_context(tenant)`; "
            "use `Model.unscoped` only in operator code that really spans tenants."
        )
    return tenant


def current_tenant_or_none() -> Tenant | None:
    return _current.get()


@contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[Tenant | None]:
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def activate(tenant: Tenant | None) -> object:
    """Set the tenant without a ``with`` block; returns a token for :func:`deactivate`."""
    return _current.set(tenant)


def deactivate(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
