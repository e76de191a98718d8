"""Folder synchronizations: the rules of saving and deleting them."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from mailvault.accounts.secrets import Secret
from mailvault.archive.models import Mailbox, MailboxAddress
from mailvault.directory.models import DirectoryService
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobRun
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile

PROCESS_TYPE = "sources.folder_sync"
FS = FolderSynchronization


class FolderSyncError(ValueError):
    """A configuration that cannot be saved or deleted; ``field`` names the form field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class FolderSyncData:
    """What the form (or the API) hands over; the type only counts on creation."""

    name: str
    type: str = FS.Type.M365
    mode: str = FS.Mode.MULTIPLE
    directory_service: DirectoryService | None = None
    address: str = ""
    delete_in_mailbox: str = FS.Delete.NEVER
    delete_older_than_days: int | None = None
    synchronize_users: bool = False
    # IMAP: the server and the Secret with the mailbox's credentials
    host: str = ""
    port: int | None = None
    security: str = ArchivingProfile.Security.TLS
    auth_method: str = ArchivingProfile.Auth.PASSWORD
    tls_verify: bool = True
    ca_certificate: str = ""
    secret: Secret | None = None
    skip_junk_trash: bool = True


def _single_mailbox(address: str) -> Mailbox:
    row = MailboxAddress.objects.select_related("mailbox").filter(address=address).first()
    if row is None:
        raise FolderSyncError(
            f"No archive mailbox has the address {address}: create it under Mailboxes first.",
            "address",
        )
    if row.mailbox.kind == Mailbox.Kind.JOURNAL:
        raise FolderSyncError(
            "Folder synchronization is not offered for journal mailboxes.", "address"
        )
    return row.mailbox


def _check(data: FolderSyncData, sync: FolderSynchronization) -> None:
    name = data.name.strip()
    if not name:
        raise FolderSyncError("Enter a name.", "name")
    if FS.objects.filter(name=name).exclude(pk=sync.pk).exists():
        raise FolderSyncError(f"A folder synchronization named {name} exists already.", "name")
    if data.mode == FS.Mode.MULTIPLE and sync.type == FS.Type.IMAP:
        raise FolderSyncError("IMAP synchronizes single mailboxes.", "mode")
    if data.mode == FS.Mode.MULTIPLE and data.directory_service is None:
        raise FolderSyncError("Choose the directory service of the mailboxes.", "directory_service")
    if data.mode == FS.Mode.SINGLE and "@" not in data.address:
        raise FolderSyncError("Enter the address of the mailbox.", "address")
    if data.delete_in_mailbox == FS.Delete.OLDER and not data.delete_older_than_days:
        raise FolderSyncError(
            "Enter after how many days mail is deleted.", "delete_older_than_days"
        )
    if data.synchronize_users and data.directory_service is None:
        raise FolderSyncError("“Synchronize Users” needs a directory service.", "synchronize_users")
    if sync.type == FS.Type.IMAP:
        _check_imap(data)


def _check_imap(data: FolderSyncData) -> None:
    if data.synchronize_users:
        raise FolderSyncError("IMAP has no directory service to synchronize.", "synchronize_users")
    if not data.host.strip():
        raise FolderSyncError("Enter the IMAP server's host name.", "host")
    if data.security not in ArchivingProfile.Security.values:
        raise FolderSyncError("Choose the connection security.", "security")
    if data.auth_method not in ArchivingProfile.Auth.values:
        raise FolderSyncError("Choose the authentication.", "auth_method")
    if data.secret is None:
        raise FolderSyncError("Choose the secret with the mailbox's credentials.", "secret")
    xoauth2 = data.auth_method == ArchivingProfile.Auth.XOAUTH2
    wanted = Secret.Kind.OAUTH_CLIENT if xoauth2 else Secret.Kind.BASIC
    if data.secret.kind != wanted:
        raise FolderSyncError(
            f"The secret must hold {Secret.Kind(wanted).label.lower()}.", "secret"
        )


@transaction.atomic
def save_folder_sync(
    data: FolderSyncData, *, sync: FolderSynchronization | None = None
) -> FolderSynchronization:
    """Create or update (FolderSyncError). The type is fixed after creation."""
    if sync is None:
        if data.type not in FS.Type.values:
            raise FolderSyncError("Choose the type.", "type")
        sync = FS(type=data.type)
    elif data.type and data.type != sync.type:
        raise FolderSyncError("The type cannot change after it was created.", "type")
    _check(data, sync)
    sync.name = data.name.strip()
    sync.mode = data.mode
    if data.mode == FS.Mode.SINGLE:
        sync.address = data.address.strip().casefold()
        sync.mailbox = _single_mailbox(sync.address)
    else:
        sync.address, sync.mailbox = "", None
    sync.directory_service = data.directory_service
    if data.directory_service is not None and data.directory_service.entra_tenant_id:
        sync.entra_tenant_id = data.directory_service.entra_tenant_id
    sync.delete_in_mailbox = data.delete_in_mailbox
    sync.delete_older_than_days = (
        data.delete_older_than_days if data.delete_in_mailbox == FS.Delete.OLDER else None
    )
    sync.synchronize_users = data.synchronize_users
    if sync.type == FS.Type.IMAP:
        sync.host, sync.port = data.host.strip(), data.port
        sync.security, sync.auth_method = data.security, data.auth_method
        sync.tls_verify, sync.ca_certificate = data.tls_verify, data.ca_certificate.strip()
        sync.secret, sync.skip_junk_trash = data.secret, data.skip_junk_trash
    sync.save()
    return sync


def active_run(sync: FolderSynchronization) -> JobRun | None:
    return jobs.active_run(PROCESS_TYPE, sync)


@transaction.atomic
def delete_folder_sync(sync: FolderSynchronization) -> int:
    """Delete it with its schedules and state, not while it runs; returns the number of
    schedules that went with it. The archive keeps every message and folder."""
    if active_run(sync) is not None:
        raise FolderSyncError(f"{sync.name} is running; cancel the run or wait for it first.")
    count = jobs.schedules_for(sync).count()
    sync.delete()
    return count
