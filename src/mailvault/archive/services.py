"""Writes to archive mailboxes and their addresses, and who may read which mailbox."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet

from mailvault.accounts.domains import canonical_address
from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Folder, Mailbox, MailboxAddress

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


class MailboxError(ValueError):
    """A mailbox change Mailvault refuses, with a message for the admin."""


def normalize_address(address: str) -> str:
    address = canonical_address(address)
    if not _ADDRESS.match(address):
        raise MailboxError(f"{address or 'An empty value'} is not a mail address.")
    domain = address.rsplit("@", 1)[1]
    if not Domain.objects.filter(name=domain).exists():
        raise MailboxError(f"{domain} is not a domain of this tenant. Add it under Domains first.")
    return address


def _check_free(addresses: Iterable[str], mailbox: Mailbox | None) -> None:
    taken = MailboxAddress.objects.filter(address__in=list(addresses))
    if mailbox is not None:
        taken = taken.exclude(mailbox=mailbox)
    first = taken.select_related("mailbox").first()
    if first is not None:
        raise MailboxError(f"{first.address} already belongs to mailbox {first.mailbox}.")


@transaction.atomic
def create_mailbox(
    primary_address: str,
    *,
    display_name: str = "",
    kind: str = Mailbox.Kind.USER,
    owner: User | None = None,
    shared_with: Iterable[Group] = (),
    secondary_addresses: Iterable[str] = (),
) -> Mailbox:
    primary = normalize_address(primary_address)
    secondaries = sorted({normalize_address(a) for a in secondary_addresses} - {primary})
    _check_free([primary, *secondaries], None)
    mailbox = Mailbox.objects.create(
        primary_address=primary, display_name=display_name, kind=kind, owner=owner
    )
    mailbox.shared_with.set(list(shared_with))
    MailboxAddress.objects.create(mailbox=mailbox, address=primary, is_primary=True)
    for address in secondaries:
        MailboxAddress.objects.create(mailbox=mailbox, address=address)
    return mailbox


@transaction.atomic
def update_mailbox(
    mailbox: Mailbox,
    *,
    display_name: str,
    owner: User | None,
    shared_with: Iterable[Group],
    secondary_addresses: Iterable[str],
) -> Mailbox:
    """Secondary addresses, owner and shares; a synchronized mailbox keeps its name."""
    primary = mailbox.primary_address
    secondaries = {normalize_address(a) for a in secondary_addresses} - {primary}
    _check_free(secondaries, mailbox)
    if not mailbox.is_synchronized:
        mailbox.display_name = display_name
    mailbox.owner = owner
    mailbox.save(update_fields=["display_name", "owner"])
    mailbox.shared_with.set(list(shared_with))
    mailbox.addresses.filter(is_primary=False).exclude(address__in=secondaries).delete()
    existing = set(mailbox.addresses.values_list("address", flat=True))
    for address in sorted(secondaries - existing):
        MailboxAddress.objects.create(mailbox=mailbox, address=address)
    return mailbox


def folder_for_path(mailbox: Mailbox, path: str) -> Folder:
    """The folder at ``path`` ("Inbox/Projects"), created with its parents when missing.
    The empty path is the mailbox's root."""
    segments = [s for s in path.strip("/").split("/") if s] if path else []
    parent: Folder | None = None
    current = ""
    folder, _ = Folder.objects.get_or_create(mailbox=mailbox, path="", defaults={"name": ""})
    for segment in segments:
        current = f"{current}/{segment}" if current else segment
        parent = folder
        folder, _ = Folder.objects.get_or_create(
            mailbox=mailbox, path=current, defaults={"name": segment, "parent": parent}
        )
    return folder


def parse_address_lines(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", text) if part]


def readable_mailboxes(user: User) -> QuerySet[Mailbox]:
    """The one place that decides which mailboxes a user may read in Web Access:
    Compliance reads every mailbox of the tenant; a Reader reads those it owns and those
    shared with one of its groups; anybody else reads none."""
    if user.has_role(Role.COMPLIANCE):
        return Mailbox.objects.all()
    if user.has_role(Role.READER):
        groups = Group.objects.filter(members=user)
        return Mailbox.objects.filter(Q(owner=user) | Q(shared_with__in=groups)).distinct()
    return Mailbox.objects.none()
