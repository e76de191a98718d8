"""The sync engine shared by Entra ID and LDAP: a directory picture in, changes out.

:func:`apply_directory` brings the tenant's domains, users, archive mailboxes, groups and
memberships in line with a :class:`~mailvault.directory.types.Directory` under the
service's constraints, inside one transaction. A dry run is the same code rolled back at
the end, so the list it shows is exactly what a real run would do. Applying the same
picture twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.services import LastAdminError, active_admins
from mailvault.accounts.throttle import normalize_username
from mailvault.archive.models import Mailbox, MailboxAddress
from mailvault.directory.models import DirectoryService, DirectoryState, SyncedObject
from mailvault.directory.types import DirDomain, Directory, DirGroup, DirUser
from mailvault.tenancy.context import current_tenant

log = logging.getLogger("mailvault.directory")
Kind = SyncedObject.Kind


@dataclass
class Change:
    what: str  # domain, user, mailbox, group
    action: str  # create, update, remove, disable
    name: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.action.capitalize()} {self.what} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class SyncResult:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def count(self, what: str, action: str) -> int:
        return sum(1 for c in self.changes if c.what == what and c.action == action)

    def summary(self) -> str:
        if not self.changes:
            return "No changes."
        parts = []
        done = {
            "create": "created",
            "update": "updated",
            "disable": "disabled",
            "remove": "removed",
        }
        for what in ("domain", "user", "mailbox", "group"):
            for action, past in done.items():
                n = self.count(what, action)
                if n:
                    parts.append(f"{what}{'es' if what == 'mailbox' else 's'} {past}: {n}")
        return "; ".join(parts)


class _DryRunRollback(Exception):
    pass


def transitive_members(
    groups: dict[str, DirGroup], users: Iterable[str]
) -> tuple[dict[str, set[str]], list[str]]:
    """Every group's user members through nested groups, and the groups that are in a
    membership cycle (a cycle is walked once, never endlessly)."""
    user_ids = set(users)
    result: dict[str, set[str]] = {}
    cycles: set[str] = set()
    for gid in groups:
        found: set[str] = set()
        visited = {gid}
        queue = [gid]
        while queue:
            current = queue.pop()
            for member in groups[current].members:
                if member in groups:
                    if member == gid:
                        cycles.add(gid)
                    if member not in visited:
                        visited.add(member)
                        queue.append(member)
                elif member in user_ids:
                    found.add(member)
        result[gid] = found
    return result, sorted(cycles)


class _Applier:
    def __init__(self, service: DirectoryService, directory: Directory) -> None:
        self.service = service
        self.directory = directory
        self.result = SyncResult()
        self.links: dict[tuple[str, str], SyncedObject] = {}

    def load_links(self) -> dict[tuple[str, str], SyncedObject]:
        return {
            (o.kind, o.external_id): o
            for o in SyncedObject.objects.filter(service=self.service).select_related(
                "user", "group", "domain", "mailbox"
            )
        }

    def change(self, what: str, action: str, name: str, detail: str = "") -> None:
        self.result.changes.append(Change(what, action, name, detail))

    def warn(self, text: str) -> None:
        self.result.warnings.append(text)

    # --- domains ----------------------------------------------------------------------

    def domains(self) -> set[str]:
        wanted = {d.name.casefold(): d for d in self.directory.domains.values() if d.verified}
        tenant = current_tenant()
        for name, dom in sorted(wanted.items()):
            self._domain(name, dom, tenant.pk)
        for (kind, ext), link in list(self.links.items()):
            if kind != Kind.DOMAIN or ext in wanted:
                continue
            domain = link.domain
            if domain is None or not self.service.remove_missing:
                continue
            in_use = (
                User.objects.filter(username__endswith=f"@{domain.name}").exists()
                or MailboxAddress.objects.filter(address__endswith=f"@{domain.name}").exists()
            )
            if in_use:
                self.warn(f"Domain {domain.name} left the directory but is still in use; kept.")
                continue
            self.change("domain", "remove", domain.name)
            domain.delete()
            del self.links[(kind, ext)]
        return set(Domain.objects.values_list("name", flat=True))

    def _domain(self, name: str, dom: DirDomain, tenant_id: int) -> None:
        link = self.links.get((Kind.DOMAIN, name))
        if link is not None and link.domain is not None:
            return
        existing = Domain.unscoped.filter(name=name).first()
        if existing is not None and existing.tenant_id != tenant_id:
            self.warn(f"Domain {name} belongs to another tenant; its users are not synchronized.")
            return
        if existing is None:
            existing = Domain.objects.create(
                name=name, kind=Domain.Kind.SYNCHRONIZED, verified=True, verified_at=timezone.now()
            )
            self.change("domain", "create", name)
        elif existing.kind == Domain.Kind.MANUAL:
            existing.kind = Domain.Kind.SYNCHRONIZED
            existing.verified = True
            existing.verified_at = existing.verified_at or timezone.now()
            existing.save(update_fields=["kind", "verified", "verified_at"])
            self.change("domain", "update", name, "now synchronized (verified by the directory)")
        if existing.kind == Domain.Kind.DEFAULT:
            return
        self.links[(Kind.DOMAIN, name)] = SyncedObject.objects.create(
            service=self.service, kind=Kind.DOMAIN, external_id=name, domain=existing
        )

    # --- users ------------------------------------------------------------------------

    def included_users(self, domains: set[str]) -> dict[str, DirUser]:
        svc = self.service
        users = self.directory.users
        included: dict[str, DirUser] = {}
        allowed: set[str] | None = None
        if svc.only_group_names:
            wanted = {n.casefold() for n in svc.only_group_names}
            closure, _ = transitive_members(self.directory.groups, users)
            allowed = set()
            for gid, group in self.directory.groups.items():
                if group.name.casefold() in wanted:
                    allowed |= closure.get(gid, set())
        for uid, user in users.items():
            if svc.enabled_only and not user.enabled:
                continue
            if svc.mailbox_only and not user.has_mailbox:
                continue
            if allowed is not None and uid not in allowed:
                continue
            username = normalize_username(user.username)
            if "@" not in username or username.rsplit("@", 1)[1] not in domains:
                self.warn(
                    f"User {user.username}: the domain of the name is not a domain of "
                    "this tenant; not synchronized."
                )
                continue
            included[uid] = user
        return included

    def users(self, included: dict[str, DirUser]) -> dict[str, User]:
        by_id: dict[str, User] = {}
        new: list[tuple[str, DirUser]] = []
        for uid, du in sorted(included.items(), key=lambda kv: kv[1].username):
            link = self.links.get((Kind.USER, uid))
            if link is None or link.user is None:
                new.append((uid, du))
                continue
            by_id[uid] = self._update_user(link.user, du)
        by_id.update(self._create_users(new))
        for (kind, ext), link in list(self.links.items()):
            if kind != Kind.USER or ext in by_id or link.user is None:
                continue
            user = link.user
            if self.service.remove_missing:
                self.change("user", "remove", user.username)
                user.delete()
                del self.links[(kind, ext)]
            elif user.is_active:
                user.is_active = False
                user.save(update_fields=["is_active"])
                self.change("user", "disable", user.username, "no longer in the directory")
        return by_id

    def _update_user(self, user: User, du: DirUser) -> User:
        username = normalize_username(du.username)
        diffs = []
        if user.username != username:
            if User.unscoped.filter(username=username).exclude(pk=user.pk).exists():
                self.warn(f"User {username} exists already; {user.username} not renamed.")
            else:
                diffs.append(f"renamed from {user.username}")
                user.username = username
        for attr, value in (
            ("display_name", du.display_name),
            ("email", du.mail or ""),
            ("is_active", bool(du.enabled)),
        ):
            if getattr(user, attr) != value:
                setattr(user, attr, value)
                diffs.append(attr.replace("_", " "))
        if diffs:
            user.save(update_fields=["username", "display_name", "email", "is_active"])
            self.change("user", "update", user.username, ", ".join(diffs))
        return user

    def _create_users(self, new: list[tuple[str, DirUser]]) -> dict[str, User]:
        """New users in bulk (a first run creates thousands)."""
        names = [normalize_username(du.username) for _, du in new]
        taken: set[str] = set()
        for chunk in range(0, len(names), 500):
            taken |= set(
                User.unscoped.filter(username__in=names[chunk : chunk + 500]).values_list(
                    "username", flat=True
                )
            )
        users: list[User] = []
        uids: list[str] = []
        for (uid, du), username in zip(new, names, strict=True):
            if username in taken:
                self.warn(
                    f"User {username} exists already (hand-made or of another directory); "
                    "not synchronized."
                )
                continue
            taken.add(username)
            user = User(
                username=username,
                display_name=du.display_name,
                email=du.mail or "",
                is_active=bool(du.enabled),
                source=User.Source.DIRECTORY,
            )
            user.set_unusable_password()
            user.rotate_device_trust()
            users.append(user)
            uids.append(uid)
            self.change("user", "create", username, "" if du.enabled else "disabled")
        User.objects.bulk_create(users, batch_size=500)
        links = SyncedObject.objects.bulk_create(
            [
                SyncedObject(service=self.service, kind=Kind.USER, external_id=uid, user=user)
                for uid, user in zip(uids, users, strict=True)
            ],
            batch_size=500,
        )
        for link in links:
            self.links[(Kind.USER, link.external_id)] = link
        return dict(zip(uids, users, strict=True))

    # --- mailboxes --------------------------------------------------------------------

    def mailboxes(self, included: dict[str, DirUser], users: dict[str, User]) -> None:
        taken: dict[str, int] = dict(MailboxAddress.objects.values_list("address", "mailbox_id"))
        self.box_addresses: dict[int, set[str]] = {}
        for address, mailbox_id in taken.items():
            self.box_addresses.setdefault(mailbox_id, set()).add(address)
        domains = set(Domain.objects.values_list("name", flat=True))
        fresh: list[tuple[SyncedObject, User, DirUser]] = []
        for uid, user in users.items():
            du = included[uid]
            link = self.links[(Kind.USER, uid)]
            if not du.has_mailbox or not du.mail:
                if link.mailbox_id is not None:
                    self.warn(
                        f"The mailbox of {user.username} is gone from the directory; its "
                        "archive mailbox and the mail in it stay."
                    )
                    link.mailbox = None
                    link.save(update_fields=["mailbox"])
                continue
            primary = du.mail.casefold()
            if (
                link.mailbox_id is None
                and primary not in taken
                and primary.rsplit("@", 1)[-1] in domains
            ):
                taken[primary] = 0  # reserved for the new mailbox
                fresh.append((link, user, du))
                continue
            self._mailbox(link, user, du, taken, domains)
        self._create_mailboxes(fresh, taken, domains)

    def _create_mailboxes(
        self,
        fresh: list[tuple[SyncedObject, User, DirUser]],
        taken: dict[str, int],
        domains: set[str],
    ) -> None:
        """Archive mailboxes of new users in bulk: the primary and every secondary
        address in a domain of the tenant that no other mailbox has."""
        boxes = [
            Mailbox(
                primary_address=du.mail.casefold(),
                display_name=du.display_name,
                owner=user,
                directory_service_name=self.service.name,
            )
            for _, user, du in fresh
        ]
        Mailbox.objects.bulk_create(boxes, batch_size=500)
        addresses: list[MailboxAddress] = []
        for box, (link, _, du) in zip(boxes, fresh, strict=True):
            taken[box.primary_address] = box.pk
            addresses.append(
                MailboxAddress(mailbox=box, address=box.primary_address, is_primary=True)
            )
            for address in du.addresses:
                if address == box.primary_address or address.rsplit("@", 1)[-1] not in domains:
                    continue
                if address in taken:
                    self.warn(f"{address} belongs to another mailbox; not added to {box}.")
                    continue
                taken[address] = box.pk
                addresses.append(MailboxAddress(mailbox=box, address=address))
            link.mailbox = box
            self.change("mailbox", "create", box.primary_address)
        MailboxAddress.objects.bulk_create(addresses, batch_size=500)
        SyncedObject.objects.bulk_update(
            [link for link, _, _ in fresh], ["mailbox"], batch_size=500
        )

    def _mailbox(
        self,
        link: SyncedObject,
        user: User,
        du: DirUser,
        taken: dict[str, int],
        domains: set[str],
    ) -> None:
        primary = du.mail.casefold()
        wanted = [a for a in du.addresses if a.rsplit("@", 1)[-1] in domains]
        if primary.rsplit("@", 1)[-1] not in domains:
            self.warn(f"Mailbox {primary}: its domain is not a domain of this tenant; skipped.")
            return
        mailbox = link.mailbox
        if mailbox is None:
            owner_id = taken.get(primary)
            mailbox = Mailbox.objects.filter(pk=owner_id).first() if owner_id else None
            if (
                mailbox is not None
                and SyncedObject.objects.filter(mailbox=mailbox).exclude(pk=link.pk).exists()
            ):
                self.warn(f"Mailbox {primary} belongs to another directory user; skipped.")
                return
        if mailbox is None:
            mailbox = Mailbox.objects.create(
                primary_address=primary,
                display_name=du.display_name,
                owner=user,
                directory_service_name=self.service.name,
            )
            MailboxAddress.objects.create(mailbox=mailbox, address=primary, is_primary=True)
            taken[primary] = mailbox.pk
            self.change("mailbox", "create", primary)
        elif (
            mailbox.owner_id != user.pk
            or mailbox.directory_service_name != self.service.name
            or mailbox.display_name != du.display_name
            or mailbox.primary_address != primary
        ):
            detail = []
            if mailbox.primary_address != primary:
                if taken.get(primary, mailbox.pk) != mailbox.pk:
                    self.warn(f"{primary} belongs to another mailbox; {mailbox} keeps its address.")
                    primary = mailbox.primary_address
                else:
                    detail.append(f"primary address was {mailbox.primary_address}")
                    mailbox.addresses.filter(is_primary=True).update(is_primary=False)
                    MailboxAddress.objects.update_or_create(
                        mailbox=mailbox, address=primary, defaults={"is_primary": True}
                    )
                    taken[primary] = mailbox.pk
                    mailbox.primary_address = primary
            mailbox.owner = user
            mailbox.display_name = du.display_name
            mailbox.directory_service_name = self.service.name
            mailbox.save()
            self.change("mailbox", "update", primary, ", ".join(detail))
        if link.mailbox_id != mailbox.pk:
            link.mailbox = mailbox
            link.save(update_fields=["mailbox"])
        existing = self.box_addresses.get(mailbox.pk)
        if existing is None:
            existing = set(mailbox.addresses.values_list("address", flat=True))
        existing = existing | {mailbox.primary_address}
        added = []
        for address in wanted:
            if address in existing:
                continue
            if taken.get(address, mailbox.pk) != mailbox.pk:
                self.warn(f"{address} belongs to another mailbox; not added to {primary}.")
                continue
            MailboxAddress.objects.create(mailbox=mailbox, address=address)
            taken[address] = mailbox.pk
            added.append(address)
        if added and primary in existing:
            self.change("mailbox", "update", primary, "addresses added: " + ", ".join(added))

    # --- groups -----------------------------------------------------------------------

    def groups(self, users: dict[str, User]) -> None:
        closure, cycles = transitive_members(self.directory.groups, users)
        if cycles:
            names = ", ".join(self.directory.groups[g].name for g in cycles)
            self.warn(f"Group membership cycle between {names}; each is synchronized once.")
        seen: set[str] = set()
        created_before = {ext for (kind, ext) in self.links if kind == Kind.GROUP}
        resolved: list[tuple[Group, set[int], bool]] = []
        for gid, dg in sorted(self.directory.groups.items(), key=lambda kv: kv[1].name):
            group = self._group(gid, dg)
            if group is None:
                continue
            seen.add(gid)
            wanted = {users[u].pk for u in closure.get(gid, set()) if u in users}
            resolved.append((group, wanted, gid not in created_before))
        self._memberships(resolved)
        for (kind, ext), link in list(self.links.items()):
            if kind != Kind.GROUP or ext in seen or link.group is None:
                continue
            if self.service.remove_missing:
                self.change("group", "remove", link.group.name)
                link.group.delete()
                del self.links[(kind, ext)]

    def _memberships(self, resolved: list[tuple[Group, set[int], bool]]) -> None:
        """Set every synchronized group's members with a few bulk statements."""
        through = Group.members.through
        current: dict[int, set[int]] = {group.pk: set() for group, _, _ in resolved}
        ids = list(current)
        for chunk in range(0, len(ids), 500):
            rows = through.objects.filter(group_id__in=ids[chunk : chunk + 500]).values_list(
                "group_id", "user_id"
            )
            for group_id, user_id in rows:
                current[group_id].add(user_id)
        adds: list[Any] = []
        for group, wanted, new in resolved:
            have = current[group.pk]
            if wanted == have:
                continue
            gone = have - wanted
            if gone:
                through.objects.filter(group_id=group.pk, user_id__in=gone).delete()
            adds.extend(through(group_id=group.pk, user_id=u) for u in wanted - have)
            if not new:
                self.change("group", "update", group.name, f"members {len(have)} → {len(wanted)}")
        through.objects.bulk_create(adds, batch_size=1000)

    def _group(self, gid: str, dg: DirGroup) -> Group | None:
        link = self.links.get((Kind.GROUP, gid))
        name = dg.name.strip() or gid
        if link is not None and link.group is not None:
            group = link.group
            if group.name != name or group.description != dg.description[:500]:
                if Group.objects.filter(name__iexact=name).exclude(pk=group.pk).exists():
                    name = f"{name} ({self.service.name})"
                if group.name != name or group.description != dg.description[:500]:
                    group.name, group.description = name, dg.description[:500]
                    group.save(update_fields=["name", "description"])
                    self.change("group", "update", name)
            return group
        if Group.objects.filter(name__iexact=name).exists():
            name = f"{name} ({self.service.name})"
            if Group.objects.filter(name__iexact=name).exists():
                self.warn(f"A group named {name} exists already; group {dg.name} skipped.")
                return None
        group = Group.objects.create(
            name=name, description=dg.description[:500], source=Group.Source.DIRECTORY
        )
        self.links[(Kind.GROUP, gid)] = SyncedObject.objects.create(
            service=self.service, kind=Kind.GROUP, external_id=gid, group=group
        )
        self.change("group", "create", name)
        return group


def apply_directory(
    service: DirectoryService,
    directory: Directory,
    *,
    dry_run: bool = False,
    state_update: dict[str, str] | None = None,
) -> SyncResult:
    """Make Mailvault match ``directory``; store it (and the delta links in
    ``state_update``) as the service's state in the same transaction."""
    applier = _Applier(service, directory)
    try:
        with transaction.atomic():
            # One run of a service at a time applies (the jobs runner also forbids two
            # running runs of one configuration; this covers the dry run and the CLI).
            list(DirectoryService.objects.select_for_update().filter(pk=service.pk).values("pk"))
            applier.links = applier.load_links()
            domains = applier.domains()
            included = applier.included_users(domains)
            users = applier.users(included)
            applier.mailboxes(included, users)
            applier.groups(users)
            if not active_admins():
                raise LastAdminError()
            state, _ = DirectoryState.objects.get_or_create(service=service)
            state.data = directory.to_json()
            for key, value in (state_update or {}).items():
                setattr(state, key, value)
            state.updated_at = timezone.now()
            state.save()
            DirectoryService.objects.filter(pk=service.pk).update(last_sync_at=timezone.now())
            if dry_run:
                raise _DryRunRollback()
    except _DryRunRollback:
        applier.result.dry_run = True
    return applier.result


def load_state(service: DirectoryService) -> tuple[Directory, DirectoryState | None]:
    state = DirectoryState.objects.filter(service=service).first()
    return Directory.from_json(state.data if state else None), state
