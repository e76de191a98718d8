"""Building and running IMAP folder synchronizations against the test Dovecot."""

from __future__ import annotations

from collections import Counter
from typing import Any

from factories import TenantWorld
from mailvault.accounts.secrets import Secret, create_secret
from mailvault.archive.models import Message, Placement
from mailvault.archive.store import store_for
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import execute_run
from mailvault.sources.foldersync import services
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.tenancy.context import tenant_context
from sources.imap.chaos_checks import ArchiveView, sha
from sources.profile_helpers import Account

FS = FolderSynchronization


def make_sync(
    world: TenantWorld, account: Account, *, password: str | None = None, **fields: Any
) -> FolderSynchronization:
    """An IMAP folder synchronization of ``account`` into the world's mailbox (TLS with
    the Dovecot certificate trusted, unless ``fields`` say otherwise)."""
    with tenant_context(world.tenant):
        secret = create_secret(
            f"fs {account.user} {password or ''}",
            Secret.Kind.BASIC,
            username=account.user,
            password=password or account.password,
        )
        data = services.FolderSyncData(
            name=fields.pop("name", f"sync {account.user}"),
            type=FS.Type.IMAP,
            mode=FS.Mode.SINGLE,
            address=world.mailbox.primary_address,
            host=fields.pop("host", "127.0.0.1"),
            port=fields.pop("port", account.server.ports["imaps"]),
            security=fields.pop("security", "tls"),
            ca_certificate=account.server.ca_pem,
            secret=secret,
            **fields,
        )
        return services.save_folder_sync(data)


def run_sync(sync: FolderSynchronization) -> tuple[JobRun, str]:
    with tenant_context(sync.tenant):
        run = jobs.run_now(services.PROCESS_TYPE, sync)
    execute_run(run.pk)
    run = JobRun.unscoped.get(pk=run.pk)
    log = "\n".join(JobMessage.unscoped.filter(run=run).values_list("text", flat=True))
    return run, log


def archived(world: TenantWorld) -> dict[str, list[str]]:
    """Folder path → subjects the folder sync filed in the world's mailbox."""
    with tenant_context(world.tenant):
        rows = Placement.objects.filter(
            mailbox=world.mailbox, source_ref__startswith="imap:"
        ).values_list("folder__path", "message__subject")
        result: dict[str, list[str]] = {}
        for path, subject in rows:
            result.setdefault(path, []).append(subject)
    return {k: sorted(v) for k, v in result.items()}


def archive_view(world: TenantWorld) -> ArchiveView:
    """Placements by (folder, SHA-256), Message rows by SHA-256, and whether the stored
    bytes hash to their SHA-256."""
    with tenant_context(world.tenant):
        rows = list(
            Placement.objects.filter(mailbox=world.mailbox).values_list(
                "folder__path", "message__sha256"
            )
        )
        digests = {digest for _, digest in rows}
        stored = Counter(
            Message.objects.filter(sha256__in=digests).values_list("sha256", flat=True)
        )
        store = store_for(world.tenant)
        try:
            verified = {d: store.has(d) and sha(store.get(d)) == d for d in digests}
        finally:
            store.close()
    return ArchiveView(Counter(rows), stored, verified)
