"""Journal endpoints: the SMTP addresses Microsoft 365 sends its journal reports to.

The business rules of Admin Access > Archiving > Journal Endpoints live here (views stay
thin), and the two checks the SMTP listener makes per endpoint — SMTP AUTH and the
source-network allowlist — read the same stored values the page writes.

The AUTH password is kept as a Django password hash only: it is never stored or shown
in clear, and an edit that leaves it empty keeps the old one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction

from mailvault.archive import services as archive
from mailvault.archive.models import Mailbox
from mailvault.sources.models import JournalEndpoint

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAME_MAX = 200  # JournalEndpoint.name's max_length


class JournalEndpointError(ValueError):
    """A journal endpoint change Mailvault refuses; ``field`` names the form field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AuthChange:
    """What an edit does to SMTP AUTH.

    ``password`` empty keeps the stored hash; ``remove`` drops username and password."""

    username: str = ""
    password: str = ""
    remove: bool = False


# --- validation -----------------------------------------------------------------------


def parse_networks(text: str) -> list[Network]:
    """The networks of an allowlist, one CIDR (or single address) per line.

    Blank lines are skipped; host bits are allowed (``10.0.0.7/8`` means ``10.0.0.0/8``).
    A bad line is refused with its number and text."""
    networks: list[Network] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            networks.append(ipaddress.ip_network(line, strict=False))
        except ValueError:
            raise JournalEndpointError(
                f"Line {number}: “{line}” is not a network. "
                "Write one address or CIDR network per line, e.g. 40.92.0.0/15 or 2a01:111::/32.",
                field="allowed_networks",
            ) from None
    return networks


def normalize_networks(text: str) -> str:
    """The allowlist as stored: canonical networks, one per line, duplicates dropped."""
    seen: dict[str, None] = {}
    for network in parse_networks(text):
        seen.setdefault(str(network), None)
    return "\n".join(seen)


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise JournalEndpointError("A journal endpoint needs a name.", field="name")
    if len(name) > NAME_MAX:
        raise JournalEndpointError("The name is too long.", field="name")
    return name


def _own_mailbox(mailbox: Mailbox) -> Mailbox:
    """The mailbox, re-read within the active tenant: another tenant's one is refused."""
    own = Mailbox.objects.filter(pk=mailbox.pk).first()
    if own is None:
        raise JournalEndpointError("Select a mailbox of this tenant.", field="mailbox")
    return own


def _auth_fields(username: str, password: str, current_hash: str) -> tuple[str, str]:
    """(username, password hash) for the endpoint; a username needs a password."""
    username = username.strip()
    if password and not username:
        raise JournalEndpointError(
            "Enter the username that goes with the password.", field="auth_username"
        )
    if not username:
        return "", ""
    if password:
        return username, make_password(password)
    if current_hash:
        return username, current_hash
    raise JournalEndpointError(
        "Enter a password for SMTP authentication (or leave the username empty).",
        field="auth_password",
    )


# --- writes ---------------------------------------------------------------------------


@transaction.atomic
def create_endpoint(
    name: str,
    mailbox: Mailbox,
    *,
    auth_username: str = "",
    auth_password: str = "",
    allowed_networks: str = "",
) -> JournalEndpoint:
    """A new, enabled endpoint with a fresh unguessable SMTP address."""
    username, password_hash = _auth_fields(auth_username, auth_password, "")
    return JournalEndpoint.objects.create(
        name=_clean_name(name),
        mailbox=_own_mailbox(mailbox),
        auth_username=username,
        auth_password_hash=password_hash,
        allowed_networks=normalize_networks(allowed_networks),
    )


@transaction.atomic
def update_endpoint(
    endpoint: JournalEndpoint,
    *,
    name: str,
    mailbox: Mailbox,
    auth: AuthChange | None = None,
    allowed_networks: str = "",
) -> JournalEndpoint:
    """Name, journal mailbox, AUTH and allowlist; the SMTP address never changes (the
    Purview journal rule points at it)."""
    endpoint.name = _clean_name(name)
    endpoint.mailbox = _own_mailbox(mailbox)
    endpoint.allowed_networks = normalize_networks(allowed_networks)
    if auth is not None:
        if auth.remove:
            endpoint.auth_username, endpoint.auth_password_hash = "", ""
        else:
            endpoint.auth_username, endpoint.auth_password_hash = _auth_fields(
                auth.username, auth.password, endpoint.auth_password_hash
            )
    endpoint.save(
        update_fields=["name", "mailbox", "allowed_networks", "auth_username", "auth_password_hash"]
    )
    return endpoint


def set_enabled(endpoint: JournalEndpoint, enabled: bool) -> JournalEndpoint:
    """A disabled endpoint's address is refused by the listener (550 5.1.1)."""
    endpoint.enabled = enabled
    endpoint.save(update_fields=["enabled"])
    return endpoint


def delete_endpoint(endpoint: JournalEndpoint) -> None:
    """The endpoint goes; its journal mailbox and the mail in it stay. (The mailbox
    itself cannot be deleted while an endpoint uses it: the foreign key protects it.)"""
    endpoint.delete()


def create_journal_mailbox(address: str, display_name: str = "") -> Mailbox:
    """A mailbox of kind Journal, for the "+" beside the mailbox picker. Its address may
    be in any domain of the tenant, the default domain (the tenant's name) included."""
    try:
        return archive.create_mailbox(
            address, display_name=display_name.strip(), kind=Mailbox.Kind.JOURNAL
        )
    except archive.MailboxError as exc:
        raise JournalEndpointError(str(exc), field="address") from exc


# --- the listener's checks ------------------------------------------------------------


def requires_auth(endpoint: JournalEndpoint) -> bool:
    return bool(endpoint.auth_username and endpoint.auth_password_hash)


def check_auth(endpoint: JournalEndpoint, username: str, password: str) -> bool:
    """Whether SMTP AUTH credentials match the endpoint's (constant-time hash check)."""
    if not requires_auth(endpoint):
        return False
    password_ok = check_password(password, endpoint.auth_password_hash)
    return password_ok and username == endpoint.auth_username


def allows_source(endpoint: JournalEndpoint, address: str) -> bool:
    """Whether a client at ``address`` may deliver to the endpoint (empty list: anyone).

    An IPv4-mapped IPv6 client address (``::ffff:192.0.2.1``) counts as its IPv4 one."""
    networks = parse_networks(endpoint.allowed_networks)
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)
