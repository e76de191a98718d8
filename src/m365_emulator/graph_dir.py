"""Graph directory routes: users, groups, members, transitiveMembers, memberOf, domains,
organization, subscribedSkus, and users/groups delta."""

from __future__ import annotations

import bisect
import time
from dataclasses import replace
from typing import Any

from m365_emulator.graph_core import (
    GraphError,
    GraphRequest,
    GraphResponse,
    compile_filter,
    context,
    decode_token,
    encode_token,
    link,
    not_found,
    page_size,
    project,
    router,
    select,
    top,
)
from m365_emulator.model import GROUP_DEFAULT, SKUS, USER_DEFAULT, Group, User
from m365_emulator.state import Tenant

USER_PROPS = tuple(User("", "", "", "", "", None).graph())
GROUP_PROPS = (*GROUP_DEFAULT, "members")
DENIED = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def need(req: GraphRequest, *roles: str) -> None:
    if not set(roles) & set(req.principal.roles):
        raise GraphError(403, *DENIED)


def _odata_type(tenant: Tenant, object_id: str) -> str:
    return "#microsoft.graph.group" if object_id in tenant.groups else "#microsoft.graph.user"


def _object(tenant: Tenant, object_id: str) -> dict[str, Any]:
    obj = tenant.users.get(object_id) or tenant.groups.get(object_id)
    assert obj is not None
    return obj.graph()


def _list(
    req: GraphRequest,
    ids: list[str],
    item: Any,
    known: tuple[str, ...],
    default: tuple[str, ...],
    type_name: str,
    ctx: str,
    *,
    keyset: bool,
    typed: bool = False,
) -> GraphResponse:
    """One page of ``ids`` (sorted for keyset paging, else by offset)."""
    limit = top(req, 100, 999)
    chosen = select(req, known, type_name)
    accept = compile_filter(req, known)
    start = 0
    token = req.query.get("$skiptoken")
    if token:
        data = decode_token(token, "skip")
        start = bisect.bisect_right(ids, data.get("a", "")) if keyset else int(data.get("o", 0))
    out: list[dict[str, Any]] = []
    index = start
    while index < len(ids) and len(out) < limit:
        graph = item(ids[index])
        index += 1
        if accept is None or accept(graph):
            entry = project(graph, chosen, default)
            if typed:
                entry = {"@odata.type": _odata_type(req.emulator.tenant, graph["id"]), **entry}
            out.append(entry)
    body: dict[str, Any] = {"@odata.context": context(req, ctx)}
    if not token and req.query.get("$count", "").lower() == "true":
        if req.headers.get("consistencylevel", "").lower() != "eventual":
            raise GraphError(
                400,
                "Request_BadRequest",
                "$count is only supported with the ConsistencyLevel:eventual header.",
            )
        body["@odata.count"] = sum(1 for i in ids if accept is None or accept(item(i)))
    if index < len(ids):
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = encode_token({"a": ids[index - 1]} if keyset else {"o": index})
        body["@odata.nextLink"] = link(req, req.path, params)
    body["value"] = out
    return GraphResponse(body=body)


def _user(req: GraphRequest, key: str) -> User:
    user = req.emulator.tenant.find_user(key)
    if user is None:
        raise not_found("Request_ResourceNotFound", key)
    p = req.principal
    if p.user_id is not None and p.user_id != user.id:
        raise GraphError(403, *DENIED)
    if p.user_id is None:
        need(req, "User.Read.All", "Directory.Read.All", "User.ReadWrite.All")
    return user


def _group(req: GraphRequest, key: str) -> Group:
    need(req, "Group.Read.All", "Directory.Read.All", "GroupMember.Read.All")
    group = req.emulator.tenant.groups.get(key)
    if group is None:
        raise not_found("Request_ResourceNotFound", key)
    return group


def _one(
    req: GraphRequest,
    graph: dict[str, Any],
    known: tuple[str, ...],
    default: tuple[str, ...],
    name: str,
    ctx: str,
) -> GraphResponse:
    body = {
        "@odata.context": context(req, ctx),
        **project(graph, select(req, known, name), default),
    }
    return GraphResponse(body=body)


# --- delta (registered before /users/{id}) -----------------------------------------------
def _delta(req: GraphRequest, kind: str) -> GraphResponse:
    need(
        req,
        *(
            ("User.Read.All", "Directory.Read.All")
            if kind == "users"
            else ("Group.Read.All", "Directory.Read.All")
        ),
    )
    e = req.emulator
    tenant = e.tenant
    fresh_link = f"{req.base}/{kind}/delta"
    delta_token, skip = req.query.get("$deltatoken"), req.query.get("$skiptoken")
    with tenant.lock:
        if delta_token == "latest":
            state = {
                "k": kind,
                "g": tenant.generation,
                "s": tenant.seq,
                "t": time.time(),
                "sel": req.query.get("$select", ""),
            }
            latest = {
                "@odata.context": context(req, kind),
                "@odata.deltaLink": link(
                    req, f"/{kind}/delta", {"$deltatoken": encode_token(state)}
                ),
                "value": [],
            }
            return GraphResponse(body=latest)
        if delta_token or skip:
            data = decode_token(delta_token or skip or "", "delta")
            stale = data.get("g") != tenant.generation or data.get("k") != kind
            stale = (
                stale or time.time() - float(data.get("t", 0)) > e.throttle.faults.delta_token_ttl
            )
            if stale or (delta_token and e.throttle.faults.delta_reset):
                raise GraphError(
                    410,
                    "resyncRequired",
                    "Resync required: replace any local data with the result of a fresh delta "
                    "query.",
                    {"Location": fresh_link},
                )
            since: int | None = data.get("s") if delta_token else data.get("since")
            until = tenant.seq if delta_token else int(data["u"])
            after, phase, sel = data.get("a", ""), data.get("ph", "o"), data.get("sel", "")
            issued = data.get("t") if skip else time.time()
        else:
            since, until, after, phase = None, tenant.seq, "", "o"
            sel, issued = req.query.get("$select", ""), time.time()
            for option in ("$top", "$expand", "$orderby"):
                if option in req.query:
                    raise GraphError(
                        400,
                        "Request_UnsupportedQuery",
                        f"Unsupported query option '{option}' for delta.",
                    )
        known = USER_PROPS if kind == "users" else GROUP_PROPS
        chosen = select(replace(req, query={"$select": sel}), known, kind[:-1]) if sel else None
        limit = page_size(req, 100, 999)
        objects: dict[str, Any] = tenant.users if kind == "users" else tenant.groups
        out: list[dict[str, Any]] = []
        if phase == "o":
            ids = tenant.sorted_ids(kind)
            index = bisect.bisect_right(ids, after) if after else 0
            while index < len(ids) and len(out) < limit:
                obj = objects[ids[index]]
                index += 1
                if obj.version <= until and (since is None or obj.version > since):
                    out.append(_delta_item(tenant, obj, chosen, since, until))
                    after = obj.id
            if index >= len(ids):
                phase, after = "r", ""
        if phase == "r" and since is None:
            phase = "done"
        elif phase == "r" and since is not None:
            removed = tenant.removed[kind]
            floor = since
            gone = sorted(
                i for i, (seq, _) in removed.items() if floor < seq <= until and i > after
            )
            room = limit - len(out)
            for object_id in gone[:room]:
                out.append({"id": object_id, "@removed": {"reason": removed[object_id][1]}})
                after = object_id
            if len(gone) <= room:
                phase = "done"
        body: dict[str, Any] = {"@odata.context": context(req, kind)}
        if phase == "done":
            state = {"k": kind, "g": tenant.generation, "s": until, "t": time.time(), "sel": sel}
            body["@odata.deltaLink"] = link(
                req, f"/{kind}/delta", {"$deltatoken": encode_token(state)}
            )
        else:
            state = {
                "k": kind,
                "g": tenant.generation,
                "since": since,
                "u": until,
                "a": after,
                "ph": phase,
                "sel": sel,
                "t": issued,
            }
            body["@odata.nextLink"] = link(
                req, f"/{kind}/delta", {"$skiptoken": encode_token(state)}
            )
        body["value"] = out
        return GraphResponse(body=body)


def _delta_item(
    tenant: Tenant, obj: User | Group, chosen: list[str] | None, since: int | None, until: int
) -> dict[str, Any]:
    if isinstance(obj, User):
        return project(obj.graph(), chosen, USER_DEFAULT)
    wants_members = chosen is None or "members" in chosen
    props = [c for c in chosen if c != "members"] if chosen is not None else None
    item = project(obj.graph(), props, GROUP_DEFAULT)
    if wants_members:
        if since is None:
            changes: list[dict[str, Any]] = [
                {"@odata.type": _odata_type(tenant, m), "id": m} for m in obj.members
            ]
        else:
            last: dict[str, bool] = {}
            for seq, member, removed in obj.member_log:
                if since < seq <= until:
                    last[member] = removed
            changes = []
            for member, removed in last.items():
                entry: dict[str, Any] = {
                    "@odata.type": _odata_type(tenant, member)
                    if not removed or member in tenant.groups
                    else "#microsoft.graph.user",
                    "id": member,
                }
                if removed:
                    entry["@removed"] = {"reason": "deleted"}
                changes.append(entry)
        item["members@delta"] = changes
    return item


@router.add("GET", "/users/delta")
def users_delta(req: GraphRequest) -> GraphResponse:
    return _delta(req, "users")


@router.add("GET", "/groups/delta")
def groups_delta(req: GraphRequest) -> GraphResponse:
    return _delta(req, "groups")


# --- users ------------------------------------------------------------------------------
@router.add("GET", "/users")
def users(req: GraphRequest) -> GraphResponse:
    need(req, "User.Read.All", "Directory.Read.All", "User.ReadWrite.All")
    t = req.emulator.tenant
    with t.lock:
        return _list(
            req,
            t.sorted_ids("users"),
            lambda i: t.users[i].graph(),
            USER_PROPS,
            USER_DEFAULT,
            "user",
            "users",
            keyset=True,
        )


@router.add("GET", "/me")
def me(req: GraphRequest) -> GraphResponse:
    if req.principal.user_id is None:
        raise GraphError(
            400, "BadRequest", "/me request is only valid with delegated authentication flow."
        )
    return user(req, req.principal.user_id)


@router.add("GET", "/users/{key}")
def user(req: GraphRequest, key: str) -> GraphResponse:
    found = _user(req, key)
    return _one(req, found.graph(), USER_PROPS, USER_DEFAULT, "user", "users/$entity")


def _member_of(req: GraphRequest, key: str, transitive: bool) -> GraphResponse:
    found = _user(req, key)
    t = req.emulator.tenant
    with t.lock:
        direct = t.member_of(found.id)
        ids = list(direct)
        if transitive:
            queue = list(direct)
            while queue:
                for parent in t.member_of(queue.pop()):
                    if parent not in ids:
                        ids.append(parent)
                        queue.append(parent)
        return _list(
            req,
            ids,
            lambda i: t.groups[i].graph(),
            GROUP_PROPS[:-1],
            GROUP_DEFAULT,
            "group",
            "directoryObjects",
            keyset=False,
            typed=True,
        )


@router.add("GET", "/users/{key}/memberOf")
def member_of(req: GraphRequest, key: str) -> GraphResponse:
    return _member_of(req, key, False)


@router.add("GET", "/users/{key}/transitiveMemberOf")
def transitive_member_of(req: GraphRequest, key: str) -> GraphResponse:
    return _member_of(req, key, True)


# --- groups -----------------------------------------------------------------------------
@router.add("GET", "/groups")
def groups(req: GraphRequest) -> GraphResponse:
    need(req, "Group.Read.All", "Directory.Read.All", "GroupMember.Read.All")
    t = req.emulator.tenant
    with t.lock:
        return _list(
            req,
            t.sorted_ids("groups"),
            lambda i: t.groups[i].graph(),
            GROUP_PROPS[:-1],
            GROUP_DEFAULT,
            "group",
            "groups",
            keyset=True,
        )


@router.add("GET", "/groups/{key}")
def group(req: GraphRequest, key: str) -> GraphResponse:
    found = _group(req, key)
    return _one(req, found.graph(), GROUP_PROPS[:-1], GROUP_DEFAULT, "group", "groups/$entity")


def _members(req: GraphRequest, key: str, transitive: bool) -> GraphResponse:
    found = _group(req, key)
    need(req, "User.Read.All", "Directory.Read.All", "GroupMember.Read.All", "Group.Read.All")
    t = req.emulator.tenant
    with t.lock:
        ids = t.transitive_members(found.id) if transitive else list(found.members)
        known = tuple(dict.fromkeys((*USER_PROPS, *GROUP_PROPS[:-1])))
        return _list(
            req,
            ids,
            lambda i: _object(t, i),
            known,
            USER_DEFAULT,
            "directoryObject",
            "directoryObjects",
            keyset=False,
            typed=True,
        )


@router.add("GET", "/groups/{key}/members")
def members(req: GraphRequest, key: str) -> GraphResponse:
    return _members(req, key, False)


@router.add("GET", "/groups/{key}/transitiveMembers")
def transitive_members(req: GraphRequest, key: str) -> GraphResponse:
    return _members(req, key, True)


# --- domains, organization, licences ---------------------------------------------------
@router.add("GET", "/domains")
def domains(req: GraphRequest) -> GraphResponse:
    need(req, "Domain.Read.All", "Directory.Read.All")
    items = [d.graph() for d in req.emulator.tenant.domains]
    return GraphResponse(body={"@odata.context": context(req, "domains"), "value": items})


@router.add("GET", "/domains/{key}")
def domain(req: GraphRequest, key: str) -> GraphResponse:
    need(req, "Domain.Read.All", "Directory.Read.All")
    for d in req.emulator.tenant.domains:
        if d.id.lower() == key.lower():
            return GraphResponse(
                body={"@odata.context": context(req, "domains/$entity"), **d.graph()}
            )
    raise not_found("Request_ResourceNotFound", key)


@router.add("GET", "/organization")
def organization(req: GraphRequest) -> GraphResponse:
    need(req, "Organization.Read.All", "Directory.Read.All", "User.Read.All")
    t = req.emulator.tenant
    org = {
        "id": t.id,
        "displayName": t.display_name,
        "tenantType": "AAD",
        "verifiedDomains": [
            {
                "name": d.id,
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "type": "Managed",
                "capabilities": "Email, OfficeCommunicationsOnline",
            }
            for d in t.domains
            if d.is_verified
        ],
    }
    return GraphResponse(body={"@odata.context": context(req, "organization"), "value": [org]})


@router.add("GET", "/subscribedSkus")
def subscribed_skus(req: GraphRequest) -> GraphResponse:
    need(req, "Organization.Read.All", "Directory.Read.All", "User.Read.All")
    t = req.emulator.tenant
    items = []
    for sku_id, part in SKUS.items():
        used = sum(1 for u in t.users.values() if sku_id in u.licenses)
        items.append(
            {
                "id": f"{t.id}_{sku_id}",
                "skuId": sku_id,
                "skuPartNumber": part,
                "consumedUnits": used,
                "capabilityStatus": "Enabled",
                "prepaidUnits": {"enabled": used + 25, "suspended": 0, "warning": 0},
            }
        )
    return GraphResponse(body={"@odata.context": context(req, "subscribedSkus"), "value": items})
