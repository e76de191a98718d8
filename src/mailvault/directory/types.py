"""The directory as every connector reports it: users, groups and domains.

Entra and LDAP both read into a :class:`Directory`; the sync engine only ever sees this.
It is stored as JSON in :class:`~mailvault.directory.models.DirectoryState`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DirUser:
    id: str  # Entra object id (case-sensitive) or LDAP entryUUID
    username: str  # userPrincipalName, or the LDAP login name mapped to name@domain
    display_name: str = ""
    enabled: bool = True
    mail: str = ""  # the primary SMTP address, empty without one
    addresses: list[str] = field(default_factory=list)  # every SMTP address, primary included
    has_mailbox: bool = False


@dataclass
class DirGroup:
    id: str
    name: str
    description: str = ""
    members: list[str] = field(default_factory=list)  # direct members: user or group ids


@dataclass
class DirDomain:
    name: str
    verified: bool = True


@dataclass
class Directory:
    users: dict[str, DirUser] = field(default_factory=dict)
    groups: dict[str, DirGroup] = field(default_factory=dict)
    domains: dict[str, DirDomain] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "users": [asdict(u) for u in self.users.values()],
            "groups": [asdict(g) for g in self.groups.values()],
            "domains": [asdict(d) for d in self.domains.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Directory:
        data = data or {}
        return cls(
            users={u["id"]: DirUser(**u) for u in data.get("users", [])},
            groups={g["id"]: DirGroup(**g) for g in data.get("groups", [])},
            domains={d["name"]: DirDomain(**d) for d in data.get("domains", [])},
        )


def smtp_addresses(proxy_addresses: list[str], mail: str = "") -> tuple[str, list[str]]:
    """The primary (``SMTP:``) and every SMTP address of an Exchange ``proxyAddresses``
    list, lower-cased; ``mail`` is the primary when no ``SMTP:`` entry says otherwise."""
    primary = ""
    addresses: list[str] = []
    for entry in proxy_addresses:
        prefix, _, address = entry.partition(":")
        if prefix.casefold() != "smtp" or "@" not in address:
            continue
        address = address.strip().casefold()
        if prefix == "SMTP" and not primary:
            primary = address
        if address not in addresses:
            addresses.append(address)
    if not primary and mail:
        primary = mail.strip().casefold()
    if primary and primary not in addresses:
        addresses.insert(0, primary)
    return primary, addresses
