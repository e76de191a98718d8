"""The emulated tenant's objects: directory entries, mailboxes, folders and messages.

Plain dataclasses; :mod:`m365_emulator.state` owns them and their change logs. Every
object carries ``version``, the change sequence number of its last change, which is what
delta queries compare against.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

E3_SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # Office 365 E3 (ENTERPRISEPACK)
E1_SKU = "18181a46-0d4e-45cd-891e-60aabd171b4e"  # Office 365 E1 (STANDARDPACK)
SKUS = {E3_SKU: "ENTERPRISEPACK", E1_SKU: "STANDARDPACK"}


def det_uuid(seed: str, *parts: object) -> str:
    """A deterministic GUID: same seed and parts, same id."""
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"m365-emulator:{seed}")
    return str(uuid.uuid5(namespace, "/".join(str(p) for p in parts)))


def exchange_id(prefix: str, *parts: object) -> str:
    """An Exchange-style opaque id (case-sensitive, URL-safe base64 with padding)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return prefix + base64.urlsafe_b64encode(digest + digest[:14]).decode()


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    given_name: str
    surname: str
    mail: str | None
    account_enabled: bool = True
    user_type: str = "Member"
    proxy_addresses: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    has_mailbox: bool = False
    job_title: str | None = None
    department: str | None = None
    is_admin: bool = False
    created: str = "2021-01-01T00:00:00Z"
    version: int = 0

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": self.given_name,
            "surname": self.surname,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": "en-US",
            "userPrincipalName": self.user_principal_name,
            "accountEnabled": self.account_enabled,
            "userType": self.user_type,
            "proxyAddresses": list(self.proxy_addresses),
            "assignedLicenses": [{"disabledPlans": [], "skuId": s} for s in self.licenses],
            "department": self.department,
            "createdDateTime": self.created,
            "mailNickname": self.user_principal_name.split("@")[0],
            "onPremisesSyncEnabled": None,
            "onPremisesImmutableId": None,
            "usageLocation": "US" if self.licenses else None,
            "externalUserState": "Accepted" if self.user_type == "Guest" else None,
        }


USER_DEFAULT = (
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)


@dataclass
class Group:
    id: str
    display_name: str
    mail: str | None
    mail_enabled: bool
    security_enabled: bool
    group_types: list[str] = field(default_factory=list)
    description: str | None = None
    members: list[str] = field(default_factory=list)  # user and group ids, in order added
    # (seq, member id, removed) — the members@delta log.
    member_log: list[tuple[int, str, bool]] = field(default_factory=list)
    created: str = "2021-01-01T00:00:00Z"
    version: int = 0

    def graph(self) -> dict[str, Any]:
        nickname = (self.mail or self.display_name).split("@")[0].replace(" ", "")
        return {
            "id": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "mail": self.mail,
            "mailEnabled": self.mail_enabled,
            "mailNickname": nickname,
            "securityEnabled": self.security_enabled,
            "groupTypes": list(self.group_types),
            "proxyAddresses": [f"SMTP:{self.mail}"] if self.mail else [],
            "createdDateTime": self.created,
            "visibility": "Private" if "Unified" in self.group_types else None,
            "onPremisesSyncEnabled": None,
        }


GROUP_DEFAULT = (
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "groupTypes",
    "proxyAddresses",
    "createdDateTime",
    "visibility",
    "onPremisesSyncEnabled",
)


@dataclass
class Domain:
    id: str
    is_default: bool = False
    is_initial: bool = False
    is_verified: bool = True

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "authenticationType": "Managed",
            "isAdminManaged": True,
            "isDefault": self.is_default,
            "isInitial": self.is_initial,
            "isRoot": True,
            "isVerified": self.is_verified,
            "supportedServices": ["Email", "OfficeCommunicationsOnline"],
            "passwordValidityPeriodInDays": 2147483647,
        }


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str | None = None
    is_hidden: bool = False
    search_folder: bool = False
    messages: dict[str, None] = field(default_factory=dict)  # immutable ids, ordered
    version: int = 0


@dataclass
class Message:
    immutable_id: str
    rest_id: str
    folder_id: str
    raw: bytes
    subject: str
    sender: tuple[str, str]  # (name, address)
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    received: str  # ISO 8601 UTC, "Z"
    sent: str
    internet_message_id: str
    body_preview: str
    is_read: bool = True
    flagged: bool = False  # follow-up flag (Graph ``flag.flagStatus``)
    version: int = 0
    change: int = 0  # bumps the change key


@dataclass
class Tombstone:
    seq: int
    immutable_id: str
    rest_id: str


@dataclass
class Mailbox:
    user_id: str
    folders: dict[str, Folder] = field(default_factory=dict)
    well_known: dict[str, str] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # by immutable id
    rest_index: dict[str, str] = field(default_factory=dict)  # rest id -> immutable id
    # folder id -> {immutable id: tombstone}; what left the folder (moved out, deleted).
    removed: dict[str, dict[str, Tombstone]] = field(default_factory=dict)
    removed_folders: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    moves: int = 0
    time_zone: str = "Pacific Standard Time"
