"""Microsoft Entra ID: read users, groups and domains of a tenant through Graph.

The first run reads everything through ``/users/delta`` and ``/groups/delta`` (so it
ends with delta links); later runs read only the changes and merge them into the
picture stored by the previous run. A ``410 Gone`` in the middle of a delta round
restarts that collection from scratch (nothing is applied until every read has
succeeded). Whether a user has an Exchange Online mailbox is asked per user
(``mailboxSettings``; 404 ``MailboxNotEnabledForRESTAPI`` means none), several users at
a time, for new and changed users only after the first run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from mailvault.directory.models import DirectoryService, DirectoryState
from mailvault.directory.services import DirectoryError
from mailvault.directory.types import DirDomain, Directory, DirGroup, DirUser, smtp_addresses
from mailvault.sources.graph import GRAPH_SCOPE, GraphClient, GraphError, ResyncRequired

USER_SELECT = "id,userPrincipalName,mail,displayName,accountEnabled,proxyAddresses,userType"
GROUP_SELECT = "id,displayName,description,members"
MAILBOX_CHECK_THREADS = 32
NO_MAILBOX_CODES = {"MailboxNotEnabledForRESTAPI", "ErrorMailboxNotFound", "ResourceNotFound"}

Logger = Callable[[str], None]


def consent_url(redirect_uri: str, state: str) -> str:
    """Where "Connect Tenant" sends the admin: Entra's admin consent for the app."""
    query = urlencode(
        {
            "client_id": settings.MAILVAULT_M365_CLIENT_ID,
            "scope": GRAPH_SCOPE,
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{settings.MAILVAULT_M365_AUTHORITY_BASE}/organizations/v2.0/adminconsent?{query}"


def new_state() -> str:
    return secrets.token_urlsafe(24)


def client_for(tenant_id: str) -> GraphClient:
    if not tenant_id:
        raise DirectoryError("Connect the tenant first (Connect Tenant).", "entra_tenant_id")
    if not settings.MAILVAULT_M365_CLIENT_ID:
        raise DirectoryError(
            "Mailvault has no Microsoft 365 app registration (MAILVAULT_M365_CLIENT_ID)."
        )
    try:
        return GraphClient(tenant_id)
    except GraphError as exc:
        raise DirectoryError(str(exc)) from exc


def test_connection(tenant_id: str) -> str:
    """Get a token for the tenant and read its domains; a short success text."""
    with client_for(tenant_id) as client:
        try:
            domains = [d.get("id", "") for d in client.items("/domains")]
        except GraphError as exc:
            raise DirectoryError(str(exc)) from exc
    names = ", ".join(sorted(domains)[:5]) or "none"
    return f"Connected to tenant {tenant_id}; domains: {names}."


def _user(item: dict[str, Any], previous: DirUser | None) -> DirUser:
    user = DirUser(**vars(previous)) if previous else DirUser(id=item["id"], username="")
    if "userPrincipalName" in item:
        user.username = item.get("userPrincipalName") or ""
    if "displayName" in item:
        user.display_name = item.get("displayName") or ""
    if "accountEnabled" in item:
        user.enabled = item.get("accountEnabled") is not False
    if "proxyAddresses" in item or "mail" in item:
        mail = item.get("mail") if "mail" in item else user.mail
        proxies = item.get("proxyAddresses")
        if proxies is None:
            proxies = [f"smtp:{a}" for a in user.addresses]
        user.mail, user.addresses = smtp_addresses(list(proxies), mail or "")
    return user


def _read_users(
    client: GraphClient, link: str, previous: Directory, info: Logger, warn: Logger
) -> tuple[dict[str, DirUser], set[str], str]:
    """The users after this round, the ids to (re)check for a mailbox, the new link."""
    full = not link
    try:
        if full:
            items, new_link = client.delta("/users/delta", params={"$select": USER_SELECT})
        else:
            items, new_link = client.delta(link)
    except ResyncRequired as exc:
        warn(f"The users' delta token is no longer valid ({exc.code}); reading all users again.")
        items, new_link = client.delta(
            exc.location or "/users/delta",
            params=None if exc.location else {"$select": USER_SELECT},
        )
        full = True
    users: dict[str, DirUser] = {} if full else dict(previous.users)
    changed: set[str] = set()
    guests: set[str] = set()
    for item in items:
        uid = item.get("id")
        if not uid:
            continue
        if "@removed" in item:
            users.pop(uid, None)
            continue
        users[uid] = _user(item, users.get(uid) if not full else previous.users.get(uid))
        if item.get("userType") == "Guest":
            guests.add(uid)
        changed.add(uid)
    for uid in guests:
        users[uid].has_mailbox = False
    info(f"Users: {len(items)} {'read' if full else 'changes read'}.")
    return users, changed - guests, new_link


def _read_groups(
    client: GraphClient, link: str, previous: Directory, warn: Logger
) -> tuple[dict[str, DirGroup], str]:
    full = not link
    try:
        if full:
            items, new_link = client.delta("/groups/delta", params={"$select": GROUP_SELECT})
        else:
            items, new_link = client.delta(link)
    except ResyncRequired as exc:
        warn(f"The groups' delta token is no longer valid ({exc.code}); reading all groups again.")
        items, new_link = client.delta(
            exc.location or "/groups/delta",
            params=None if exc.location else {"$select": GROUP_SELECT},
        )
        full = True
    groups: dict[str, DirGroup] = {}
    if not full:
        groups = {
            gid: DirGroup(g.id, g.name, g.description, list(g.members))
            for gid, g in previous.groups.items()
        }
    seen_full: set[str] = set()
    for item in items:
        gid = item.get("id")
        if not gid:
            continue
        if "@removed" in item:
            groups.pop(gid, None)
            continue
        group = groups.get(gid)
        if group is None:
            group = DirGroup(id=gid, name="")
            groups[gid] = group
        if "displayName" in item:
            group.name = item.get("displayName") or ""
        if "description" in item:
            group.description = item.get("description") or ""
        members = item.get("members@delta")
        if members is None:
            continue
        if full and gid not in seen_full:
            # A full read lists every member (possibly over several pages of the group).
            group.members = []
            seen_full.add(gid)
        current = list(group.members)
        for member in members:
            mid = member.get("id")
            if not mid:
                continue
            if "@removed" in member:
                if mid in current:
                    current.remove(mid)
            elif mid not in current:
                current.append(mid)
        group.members = current
    return groups, new_link


def _has_mailbox(client: GraphClient, uid: str) -> bool | None:
    """True/False, or None when the user disappeared meanwhile."""
    try:
        client.request("GET", f"/users/{uid}/mailboxSettings", mailbox=uid)
    except GraphError as exc:
        if exc.status == 404 and exc.code == "MailboxNotEnabledForRESTAPI":
            return False
        if exc.status == 404 and exc.code in ("Request_ResourceNotFound", "ResourceNotFound"):
            return None
        if exc.status == 404 or exc.code in NO_MAILBOX_CODES:
            return False
        raise
    return True


def read_directory(
    service: DirectoryService,
    previous: Directory,
    state: DirectoryState | None,
    *,
    full: bool = False,
    info: Logger,
    warn: Logger,
) -> tuple[Directory, dict[str, str]]:
    users_link = "" if full or state is None else state.users_delta_link
    groups_link = "" if full or state is None else state.groups_delta_link
    with client_for(service.entra_tenant_id) as client:
        try:
            domains = {
                d["id"].casefold(): DirDomain(
                    name=d["id"].casefold(), verified=bool(d.get("isVerified"))
                )
                for d in client.items("/domains")
                if d.get("id")
            }
            users, changed, new_users_link = _read_users(client, users_link, previous, info, warn)
            groups, new_groups_link = _read_groups(client, groups_link, previous, warn)
            to_check = sorted(uid for uid in changed if uid in users)
            if to_check:
                info(f"Checking {len(to_check)} users for an Exchange Online mailbox.")
                with ThreadPoolExecutor(MAILBOX_CHECK_THREADS) as pool:
                    answers = list(pool.map(lambda uid: _has_mailbox(client, uid), to_check))
                for uid, answer in zip(to_check, answers, strict=True):
                    if answer is None:
                        users.pop(uid, None)
                    else:
                        users[uid].has_mailbox = answer
        except GraphError as exc:
            raise DirectoryError(str(exc)) from exc
        stats = client.stats
        info(
            f"Graph: {stats.requests} requests ({stats.per_second:.0f}/s), "
            f"{stats.throttled} throttled (429), {stats.retries} retries."
        )
    directory = Directory(users=users, groups=groups, domains=domains)
    return directory, {"users_delta_link": new_users_link, "groups_delta_link": new_groups_link}
