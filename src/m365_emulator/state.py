"""The emulated tenant in memory: directory, mailboxes and their change logs.

One re-entrant lock guards everything; handlers hold it only while they read or change
objects (never while they wait). Directory objects share one change sequence
(``seq``); each mailbox has its own. Delta tokens carry the tenant's ``generation``:
bumping it (the 410 reset switch) invalidates every token issued before.
"""

from __future__ import annotations

import bisect
import datetime
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from m365_emulator import mime
from m365_emulator.model import (
    Domain,
    Folder,
    Group,
    Mailbox,
    Message,
    Tombstone,
    User,
    exchange_id,
)

MailboxFactory = Callable[[User], Mailbox]


@dataclass
class App:
    """The one multi-tenant app registration (Mailvault) and its consent in this tenant."""

    client_id: str
    secret: str
    display_name: str = "Mailvault"
    redirect_uris: list[str] = field(default_factory=list)
    app_roles: tuple[str, ...] = (
        "User.Read.All",
        "Group.Read.All",
        "Domain.Read.All",
        "Organization.Read.All",
        "Mail.ReadWrite",
        "MailboxSettings.Read",
    )
    delegated: tuple[str, ...] = ("openid", "profile", "email", "offline_access", "User.Read")
    consented: bool = False
    service_principal_id: str = ""
    # Uploaded certificates (private_key_jwt), by every thumbprint form a client may send.
    certificates: dict[str, Any] = field(default_factory=dict)


class Tenant:
    def __init__(self, tenant_id: str, display_name: str, seed: str) -> None:
        self.id = tenant_id
        self.display_name = display_name
        self.seed = seed
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.domains: list[Domain] = []
        # kind -> {id: (seq, reason)}: what delta reports as @removed.
        self.removed: dict[str, dict[str, tuple[int, str]]] = {"users": {}, "groups": {}}
        self.seq = 0
        self.generation = 1
        self.apps: dict[str, App] = {}
        self._sorted: dict[str, list[str]] = {}
        self._mailboxes: dict[str, Mailbox] = {}
        self.mailbox_factory: MailboxFactory | None = None
        self.user_password = ""
        # Every message a Graph client deleted (DELETE or permanentDelete), oldest first.
        self.deletions: list[dict[str, object]] = []

    # --- directory -------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def sorted_ids(self, kind: str) -> list[str]:
        """Ids of users or groups in paging order (by id), cached until a change."""
        ids = self._sorted.get(kind)
        if ids is None:
            source = self.users if kind == "users" else self.groups
            ids = self._sorted[kind] = sorted(source)
        return ids

    def ids_after(self, kind: str, after: str | None) -> tuple[list[str], int]:
        ids = self.sorted_ids(kind)
        return ids, (bisect.bisect_right(ids, after) if after else 0)

    @property
    def default_domain(self) -> str:
        return next((d.id for d in self.domains if d.is_default), self.domains[0].id)

    @property
    def initial_domain(self) -> str:
        return next((d.id for d in self.domains if d.is_initial), self.domains[0].id)

    def knows_domain(self, name: str) -> bool:
        return any(d.id.lower() == name.lower() for d in self.domains)

    def add_user(self, user: User) -> User:
        with self.lock:
            user.version = self.next_seq()
            self.users[user.id] = user
            self.removed["users"].pop(user.id, None)
            self._sorted.pop("users", None)
            return user

    def update_user(self, user_id: str, **changes: object) -> User:
        with self.lock:
            user = self.users[user_id]
            for name, value in changes.items():
                if not hasattr(user, name):
                    raise KeyError(name)
                setattr(user, name, value)
            user.version = self.next_seq()
            return user

    def delete_user(self, user_id: str, *, permanent: bool = False) -> None:
        """Delete a user (soft delete, delta reason "changed", unless permanent)."""
        with self.lock:
            self.users.pop(user_id)
            self._mailboxes.pop(user_id, None)
            for group in self.groups.values():
                if user_id in group.members:
                    self._remove_member(group, user_id)
            reason = "deleted" if permanent else "changed"
            self.removed["users"][user_id] = (self.next_seq(), reason)
            self._sorted.pop("users", None)

    def add_group(self, group: Group) -> Group:
        with self.lock:
            group.version = self.next_seq()
            for member in group.members:
                group.member_log.append((group.version, member, False))
            self.groups[group.id] = group
            self.removed["groups"].pop(group.id, None)
            self._sorted.pop("groups", None)
            return group

    def update_group(self, group_id: str, **changes: object) -> Group:
        with self.lock:
            group = self.groups[group_id]
            for name, value in changes.items():
                if name in ("members", "member_log") or not hasattr(group, name):
                    raise KeyError(name)
                setattr(group, name, value)
            group.version = self.next_seq()
            return group

    def delete_group(self, group_id: str, *, permanent: bool = False) -> None:
        with self.lock:
            self.groups.pop(group_id)
            for group in self.groups.values():
                if group_id in group.members:
                    self._remove_member(group, group_id)
            reason = "deleted" if permanent else "changed"
            self.removed["groups"][group_id] = (self.next_seq(), reason)
            self._sorted.pop("groups", None)

    def add_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            group = self.groups[group_id]
            if member_id not in self.users and member_id not in self.groups:
                raise KeyError(member_id)
            if member_id in group.members:
                return
            group.members.append(member_id)
            group.version = self.next_seq()
            group.member_log.append((group.version, member_id, False))

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            group = self.groups[group_id]
            if member_id not in group.members:
                raise KeyError(member_id)
            self._remove_member(group, member_id)

    def _remove_member(self, group: Group, member_id: str) -> None:
        group.members.remove(member_id)
        group.version = self.next_seq()
        group.member_log.append((group.version, member_id, True))

    def transitive_members(self, group_id: str) -> list[str]:
        """Every user and group reachable from the group, each once (cycles are safe)."""
        seen: dict[str, None] = {}
        stack = list(reversed(self.groups[group_id].members))
        while stack:
            member = stack.pop()
            if member in seen or member == group_id:
                continue
            seen[member] = None
            nested = self.groups.get(member)
            if nested is not None:
                stack.extend(reversed(nested.members))
        return list(seen)

    def member_of(self, object_id: str) -> list[str]:
        return [g.id for g in self.groups.values() if object_id in g.members]

    def find_user(self, key: str) -> User | None:
        """By id or by user principal name (case-insensitive, as Graph does)."""
        user = self.users.get(key)
        if user is not None:
            return user
        lowered = key.lower()
        for candidate in self.users.values():
            if candidate.user_principal_name.lower() == lowered:
                return candidate
        return None

    def find_by_address(self, address: str) -> User | Group | None:
        lowered = address.lower()
        for user in self.users.values():
            if (user.mail or "").lower() == lowered or any(
                p.split(":", 1)[1].lower() == lowered for p in user.proxy_addresses
            ):
                return user
        for group in self.groups.values():
            if (group.mail or "").lower() == lowered:
                return group
        return None

    # --- mailboxes -------------------------------------------------------------------
    def mailbox(self, user_id: str) -> Mailbox | None:
        """The user's mailbox, built on first use (large generated tenants stay cheap)."""
        with self.lock:
            user = self.users.get(user_id)
            if user is None or not user.has_mailbox:
                return None
            box = self._mailboxes.get(user_id)
            if box is None and self.mailbox_factory is not None:
                box = self._mailboxes[user_id] = self.mailbox_factory(user)
            return box

    def set_mailbox(self, user_id: str, box: Mailbox) -> None:
        """Give a user this mailbox instead of the one the fixture would build."""
        with self.lock:
            self._mailboxes[user_id] = box

    def materialized_mailboxes(self) -> Iterable[Mailbox]:
        return list(self._mailboxes.values())

    def resolve_folder(self, box: Mailbox, key: str) -> Folder | None:
        folder = box.folders.get(key)
        if folder is None:
            folder_id = box.well_known.get(key.lower())
            folder = box.folders.get(folder_id) if folder_id else None
        return folder

    def child_folder(self, box: Mailbox, parent: Folder, name: str) -> Folder:
        """The child folder of that name (case-insensitive), created when missing."""
        with self.lock:
            for folder in box.folders.values():
                if folder.parent_id == parent.id and folder.display_name.lower() == name.lower():
                    return folder
            folder = Folder(
                id=exchange_id("AQMkAD", box.user_id, "folder", parent.id, name),
                display_name=name,
                parent_id=parent.id,
            )
            box.seq += 1
            folder.version = box.seq
            box.folders[folder.id] = folder
            return folder

    def find_message(self, box: Mailbox, key: str) -> Message | None:
        message = box.messages.get(key)
        if message is None:
            immutable = box.rest_index.get(key)
            message = box.messages.get(immutable) if immutable else None
        return message

    def deliver(
        self,
        box: Mailbox,
        folder: Folder,
        raw: bytes,
        *,
        key: object,
        is_read: bool = False,
        flagged: bool = False,
        received: datetime.datetime | None = None,
    ) -> Message:
        """File raw bytes into a folder (``key`` makes the ids deterministic)."""
        with self.lock:
            moment = received or datetime.datetime.now(datetime.UTC)
            parsed = mime.parse(raw, moment)
            immutable = exchange_id("AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A", box.user_id, key)
            message = Message(
                immutable_id=immutable,
                rest_id=exchange_id("AAMkAD", box.user_id, key, 0),
                folder_id=folder.id,
                raw=raw,
                subject=parsed.subject,
                sender=parsed.sender,
                to=parsed.to,
                cc=parsed.cc,
                received=mime.iso(received or parsed.date),
                sent=mime.iso(parsed.date),
                internet_message_id=parsed.internet_message_id,
                body_preview=parsed.body_preview,
                is_read=is_read,
                flagged=flagged,
            )
            self._place(box, message, folder)
            return message

    def _place(self, box: Mailbox, message: Message, folder: Folder) -> None:
        box.seq += 1
        message.version = box.seq
        message.folder_id = folder.id
        box.messages[message.immutable_id] = message
        box.rest_index[message.rest_id] = message.immutable_id
        folder.messages[message.immutable_id] = None
        box.removed.get(folder.id, {}).pop(message.immutable_id, None)

    def _take_out(self, box: Mailbox, message: Message) -> None:
        box.seq += 1
        folder = box.folders[message.folder_id]
        folder.messages.pop(message.immutable_id, None)
        box.removed.setdefault(folder.id, {})[message.immutable_id] = Tombstone(
            box.seq, message.immutable_id, message.rest_id
        )

    def move(self, box: Mailbox, message: Message, dest: Folder, *, new_immutable: bool) -> None:
        """Move a message: its REST id changes; its immutable id only if asked (archive
        mailbox moves, or the fault switch)."""
        with self.lock:
            if dest.id == message.folder_id:
                return
            self._take_out(box, message)
            box.rest_index.pop(message.rest_id, None)
            box.moves += 1
            message.rest_id = exchange_id("AAMkAD", box.user_id, message.immutable_id, box.moves)
            if new_immutable:
                del box.messages[message.immutable_id]
                message.immutable_id = exchange_id(
                    "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A", box.user_id, "moved", box.moves
                )
            self._place(box, message, dest)

    def remove(self, box: Mailbox, message: Message) -> None:
        with self.lock:
            self._take_out(box, message)
            box.rest_index.pop(message.rest_id, None)
            del box.messages[message.immutable_id]

    def folder_path(self, box: Mailbox, folder_id: str) -> str:
        """A folder's display names from below the root, joined by "/"."""
        names: list[str] = []
        root = box.well_known.get("msgfolderroot")
        folder = box.folders.get(folder_id)
        while folder is not None and folder.id != root:
            names.append(folder.display_name)
            folder = box.folders.get(folder.parent_id)
        return "/".join(reversed(names))

    def record_deletion(
        self, box: Mailbox, message: Message, *, permanent: bool
    ) -> dict[str, object]:
        """Log a client's deletion (before it happens; the caller holds the lock)."""
        entry: dict[str, object] = {
            "user_id": box.user_id,
            "immutable_id": message.immutable_id,
            "rest_id": message.rest_id,
            "internet_message_id": message.internet_message_id,
            "folder": self.folder_path(box, message.folder_id),
            "sha256": hashlib.sha256(message.raw).hexdigest(),
            "flagged": message.flagged,
            "permanent": permanent,
            "at": time.time(),
        }
        self.deletions.append(entry)
        return entry

    def touch(self, box: Mailbox, message: Message, **changes: object) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(message, name, value)
            box.seq += 1
            message.version = box.seq
            message.change += 1
