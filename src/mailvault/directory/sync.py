"""Running a directory synchronization: read, apply, report; and its process type."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mailvault.accounts.services import AccountError
from mailvault.directory import engine
from mailvault.directory.models import DirectoryService
from mailvault.directory.services import PROCESS_TYPE, DirectoryError
from mailvault.jobs.context import JobContext, JobFailed
from mailvault.jobs.registry import process_type

log = logging.getLogger("mailvault.directory")
MAX_LISTED = 500  # changes listed one by one in the process log; the rest are counted

Logger = Callable[[str], None]


def read(
    service: DirectoryService, *, info: Logger, warn: Logger, full: bool = False
) -> tuple[engine.Directory, dict[str, str]]:
    """The directory as it is now and the delta links to store with it."""
    if service.is_entra:
        from mailvault.directory import entra

        previous, state = engine.load_state(service)
        return entra.read_directory(service, previous, state, full=full, info=info, warn=warn)
    from mailvault.directory import ldap

    try:
        return ldap.read_directory(service), {}
    except ldap.LdapError as exc:
        raise DirectoryError(str(exc)) from exc


def synchronize(
    service: DirectoryService,
    *,
    dry_run: bool = False,
    full: bool = False,
    info: Logger = log.info,
    warn: Logger = log.warning,
) -> engine.SyncResult:
    directory, links = read(service, info=info, warn=warn, full=full)
    info(
        f"Read {len(directory.users)} users, {len(directory.groups)} groups and "
        f"{len(directory.domains)} domains from {service.name}."
    )
    try:
        result = engine.apply_directory(service, directory, dry_run=dry_run, state_update=links)
    except AccountError as exc:
        raise DirectoryError(f"Nothing was changed: {exc}") from exc
    return result


@process_type(
    PROCESS_TYPE,
    "Directory synchronization",
    config_model="directory.DirectoryService",
    timeout_seconds=4 * 3600,
)
def directory_sync(ctx: JobContext) -> None:
    service = ctx.config
    assert isinstance(service, DirectoryService)
    ctx.info(f"Synchronizing {service.name} ({service.get_kind_display()}).")
    try:
        result = synchronize(service, info=ctx.info, warn=ctx.warning)
    except DirectoryError as exc:
        ctx.error(f"{exc} The directory in Mailvault was not changed.")
        raise JobFailed(str(exc)) from exc
    for change in result.changes[:MAX_LISTED]:
        ctx.info(str(change))
    if len(result.changes) > MAX_LISTED:
        ctx.info(f"… and {len(result.changes) - MAX_LISTED} more changes.")
    for warning in result.warnings[:MAX_LISTED]:
        ctx.warning(warning)
    ctx.info(f"Synchronization finished. {result.summary()}")


def test_connection(service: DirectoryService) -> str:
    """A short success text; DirectoryError with the reason otherwise."""
    if service.is_entra:
        from mailvault.directory import entra

        return entra.test_connection(service.entra_tenant_id)
    from mailvault.directory import ldap

    try:
        return ldap.test_connection(service)
    except ldap.LdapError as exc:
        raise DirectoryError(str(exc)) from exc
