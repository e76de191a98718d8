"""Archiving profiles: the rules of saving and deleting, and the connection settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction

from mailvault.accounts.secrets import Secret
from mailvault.archive.models import Mailbox, MailboxAddress
from mailvault.directory import services as directory_services
from mailvault.directory.models import DirectoryService
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobRun
from mailvault.sources.imap.client import ImapSettings
from mailvault.sources.models_profiles import ArchivingProfile

PROCESS_TYPE = "sources.archiving_profile"
DEFAULT_PORTS: dict[tuple[str, str], int] = {
    (ArchivingProfile.Type.IMAP, ArchivingProfile.Security.TLS): 993,
    (ArchivingProfile.Type.IMAP, ArchivingProfile.Security.STARTTLS): 143,
    (ArchivingProfile.Type.IMAP, ArchivingProfile.Security.NONE): 143,
    (ArchivingProfile.Type.POP3, ArchivingProfile.Security.TLS): 995,
    (ArchivingProfile.Type.POP3, ArchivingProfile.Security.STARTTLS): 110,
    (ArchivingProfile.Type.POP3, ArchivingProfile.Security.NONE): 110,
}


class ProfileError(ValueError):
    """A profile that cannot be saved or deleted; ``field`` names the form field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class ProfileData:
    """What the form (or the API) hands over; the type only counts on creation."""

    name: str
    type: str
    mode: str = ArchivingProfile.Mode.SINGLE
    directory_service: DirectoryService | None = None
    host: str = ""
    port: int | None = None
    security: str = ArchivingProfile.Security.TLS
    auth_method: str = ArchivingProfile.Auth.PASSWORD
    tls_verify: bool = True
    ca_certificate: str = ""
    address: str = ""
    secret: Secret | None = None
    mailbox: Mailbox | None = None
    include_folders: str = ""
    exclude_folders: str = ""
    skip_junk_trash: bool = True
    older_than: date | None = None
    newer_than: date | None = None
    delete_in_source: bool = False


def _retest_directory(service: DirectoryService) -> None:
    """Test the directory service's connection again (ProfileError with its reason)."""
    from mailvault.directory.sync import test_connection  # the directory's own test

    try:
        test_connection(service)
    except Exception as exc:  # DirectoryError, or what the connection raised
        raise ProfileError(
            f"The connection to the directory service {service.name} failed: {exc}",
            "directory_service",
        ) from exc


def profiles_using(service: DirectoryService) -> list[str]:
    """For the directory's delete check: the profiles that name ``service``."""
    return [
        f"archiving profile {name}"
        for name in ArchivingProfile.objects.filter(directory_service=service).values_list(
            "name", flat=True
        )
    ]


if profiles_using not in directory_services.USAGE_CHECKS:
    directory_services.USAGE_CHECKS.append(profiles_using)


def _mailbox_for(address: str) -> Mailbox | None:
    row = MailboxAddress.objects.select_related("mailbox").filter(address=address).first()
    return row.mailbox if row else None


def _check(data: ProfileData, profile: ArchivingProfile) -> None:
    kind = profile.type
    P = ArchivingProfile
    if not data.name.strip():
        raise ProfileError("Enter a name.", "name")
    if P.objects.filter(name=data.name.strip()).exclude(pk=profile.pk).exists():
        raise ProfileError(f"A profile named {data.name.strip()} exists already.", "name")
    if kind == P.Type.POP3 and data.mode != P.Mode.SINGLE:
        raise ProfileError("POP3 archives single mailboxes only.", "mode")
    if data.mode == P.Mode.MULTIPLE:
        if data.directory_service is None:
            raise ProfileError(
                "Choose the directory service of the mailboxes.", "directory_service"
            )
        if kind == P.Type.IMAP:
            # A master (admin) user opens every mailbox (SASL PLAIN authorization identity).
            if data.secret is None or data.secret.kind != Secret.Kind.BASIC:
                raise ProfileError(
                    "Choose the secret of the server's master user (user name and password).",
                    "secret",
                )
            if not data.host.strip():
                raise ProfileError("Enter the server's host name.", "host")
        return
    if not data.address.strip() or "@" not in data.address:
        raise ProfileError("Enter the address of the mailbox.", "address")
    # Microsoft 365 mailboxes are read by Mailvault's own app (admin consent): no secret.
    if kind != P.Type.M365 and data.secret is None:
        raise ProfileError("Choose the secret with the mailbox's credentials.", "secret")
    wanted = Secret.Kind.OAUTH_CLIENT if data.auth_method == P.Auth.XOAUTH2 else Secret.Kind.BASIC
    if kind != P.Type.M365 and data.secret is not None and data.secret.kind != wanted:
        raise ProfileError(f"The secret must hold {Secret.Kind(wanted).label.lower()}.", "secret")
    if kind == P.Type.POP3 and data.auth_method != P.Auth.PASSWORD:
        raise ProfileError("POP3 signs in with a user name and password.", "auth_method")
    if kind != P.Type.M365 and not data.host.strip():
        raise ProfileError("Enter the server's host name.", "host")
    if data.older_than and data.newer_than and data.newer_than >= data.older_than:
        raise ProfileError(
            "“Newer than” must be before “older than”, or nothing is archived.", "newer_than"
        )


@transaction.atomic
def save_profile(data: ProfileData, *, profile: ArchivingProfile | None = None) -> ArchivingProfile:
    """Create or update a profile (ProfileError). The type is fixed after creation."""
    if profile is None:
        if data.type not in ArchivingProfile.Type.values:
            raise ProfileError("Choose the type of the profile.", "type")
        profile = ArchivingProfile(type=data.type)
    elif data.type and data.type != profile.type:
        raise ProfileError("The type of a profile cannot change after it was created.", "type")
    _check(data, profile)
    mailbox = data.mailbox
    if data.mode == ArchivingProfile.Mode.SINGLE and mailbox is None:
        mailbox = _mailbox_for(data.address.strip().casefold())
        if mailbox is None:
            raise ProfileError(
                f"No archive mailbox has the address {data.address.strip()}: create it under "
                "Mailboxes or choose one.",
                "mailbox",
            )
    if data.mode == ArchivingProfile.Mode.MULTIPLE and data.directory_service is not None:
        _retest_directory(data.directory_service)
        profile.entra_tenant_id = data.directory_service.entra_tenant_id
    fields: dict[str, Any] = {
        "name": data.name.strip(),
        "mode": data.mode,
        "directory_service": data.directory_service
        if data.mode == ArchivingProfile.Mode.MULTIPLE
        else None,
        "host": data.host.strip(),
        "port": data.port or DEFAULT_PORTS.get((profile.type, data.security)),
        "security": data.security,
        "auth_method": data.auth_method,
        "tls_verify": data.tls_verify,
        "ca_certificate": data.ca_certificate.strip(),
        "address": data.address.strip().casefold(),
        "secret": data.secret,
        "mailbox": mailbox if data.mode == ArchivingProfile.Mode.SINGLE else None,
        "include_folders": data.include_folders.strip(),
        "exclude_folders": data.exclude_folders.strip(),
        "skip_junk_trash": data.skip_junk_trash,
        "older_than": data.older_than,
        "newer_than": data.newer_than,
        "delete_in_source": data.delete_in_source,
    }
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.save()
    return profile


def active_run(profile: ArchivingProfile) -> JobRun | None:
    return jobs.active_run(PROCESS_TYPE, profile)


@transaction.atomic
def delete_profile(profile: ArchivingProfile) -> int:
    """Delete a profile with its schedules and sync state; not while it runs.
    Returns how many schedules went with it."""
    if active_run(profile) is not None:
        raise ProfileError(f"{profile.name} is running; cancel the run or wait for it first.")
    count = jobs.schedules_for(profile).count()
    profile.delete()  # its schedules go with it (mailvault.jobs.signals)
    return count


def connection_settings(profile: ArchivingProfile, *, oauth_token: str = "") -> ImapSettings:
    """Host, security and the revealed credentials (IMAP and POP3 share the type)."""
    from mailvault.sources.imap.server import MissingSecret, server_settings

    try:
        return server_settings(
            profile,
            address=profile.address,
            default_port=DEFAULT_PORTS[(profile.type, profile.security)],
            oauth=oauth_token,
            authorize_as=profile.address if profile.mode == ArchivingProfile.Mode.MULTIPLE else "",
        )
    except MissingSecret as exc:
        raise ProfileError(f"{profile.name} has no secret.", "secret") from exc
