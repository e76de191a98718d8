"""Graph message routes: list, get, ``$value``, per-folder delta, move, DELETE,
permanentDelete, PATCH. Folders and mailbox access: :mod:`m365_emulator.graph_mail`."""

from __future__ import annotations

import bisect
import datetime
import time
from dataclasses import replace
from typing import Any

from m365_emulator.graph_core import (
    GraphError,
    GraphRequest,
    GraphResponse,
    context,
    decode_token,
    encode_token,
    link,
    page_size,
    router,
    select,
    top,
)
from m365_emulator.graph_mail import (
    MESSAGE_PROPS,
    find_folder,
    find_message,
    message_json,
    open_mailbox,
)
from m365_emulator.mime import iso
from m365_emulator.model import Folder, Mailbox, Message


def _message_page(req: GraphRequest, box: Mailbox, ids: list[str]) -> GraphResponse:
    limit = top(req, 10, 1000)
    chosen = select(req, MESSAGE_PROPS, "message")
    since = _received_filter(req)
    messages = sorted(
        (box.messages[i] for i in ids if box.messages[i].received >= since),
        key=lambda m: (m.received, m.immutable_id),
        reverse=True,
    )
    skip = int(req.query.get("$skip", "0") or 0)
    out = [message_json(req, box, m, chosen) for m in messages[skip : skip + limit]]
    body: dict[str, Any] = {"@odata.context": context(req, "messages")}
    if skip + limit < len(messages):
        body["@odata.nextLink"] = link(req, req.path, {**req.query, "$skip": str(skip + limit)})
    body["value"] = out
    return GraphResponse(body=body, headers=_applied(req))


def _received_filter(req: GraphRequest) -> str:
    """The one ``$filter`` mail sync needs: ``receivedDateTime ge|gt <instant>``."""
    flt = req.query.get("$filter", "")
    if not flt:
        return ""
    parts = flt.split()
    if len(parts) != 3 or parts[0] != "receivedDateTime" or parts[1] not in ("ge", "gt"):
        raise GraphError(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The filter expression for $filter does not match to a single extended "
            "property and a value restriction.",
        )
    return _instant(parts[2].strip("'"))


def _applied(req: GraphRequest) -> dict[str, str]:
    return {"Preference-Applied": 'IdType="ImmutableId"'} if req.immutable else {}


@router.add("GET", "/users/{key}/messages")
def all_messages(req: GraphRequest, key: str) -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        visible = [m for m, msg in box.messages.items() if not box.folders[msg.folder_id].is_hidden]
        return _message_page(req, box, visible)


@router.add("GET", "/users/{key}/mailFolders/{fid}/messages")
def folder_messages(req: GraphRequest, key: str, fid: str) -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        return _message_page(req, box, list(find_folder(req, box, fid).messages))


@router.add("GET", "/users/{key}/mailFolders/{fid}/messages/delta")
def messages_delta(req: GraphRequest, key: str, fid: str) -> GraphResponse:
    user, box = open_mailbox(req, key)
    e = req.emulator
    with e.tenant.lock:
        folder = find_folder(req, box, fid)
        delta, skip = req.query.get("$deltatoken"), req.query.get("$skiptoken")
        if delta or skip:
            data = decode_token(delta or skip or "", "delta")
            stale = (
                data.get("g") != e.tenant.generation
                or data.get("f") != folder.id
                or data.get("u") != user.id
            )
            stale = (
                stale or time.time() - float(data.get("t", 0)) > e.throttle.faults.delta_token_ttl
            )
            if stale or (delta and e.throttle.faults.delta_reset):
                raise GraphError(
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found; re-sync is required.",
                )
            since = data.get("s")
            until = box.seq if delta else int(data["un"])
            after, sel, after_date, issued = (
                data.get("a", ""),
                data.get("sel", ""),
                data.get("ge", ""),
                data.get("t", time.time()),
            )
        else:
            since, until, after, issued = None, box.seq, "", time.time()
            sel = req.query.get("$select", "")
            after_date = _received_filter(req)
        chosen = select(_with_query(req, sel), MESSAGE_PROPS, "message") if sel else None
        limit = page_size(req, 10, 1000)
        candidates = sorted(
            i
            for i in folder.messages
            if box.messages[i].version <= until
            and (since is None or box.messages[i].version > since)
            and (not after_date or box.messages[i].received >= after_date)
        )
        removed: list[str] = []
        if since is not None:
            removed = sorted(
                i for i, t in box.removed.get(folder.id, {}).items() if since < t.seq <= until
            )
        entries = [(i, False) for i in candidates] + [(i, True) for i in removed]
        entries.sort()
        start = bisect.bisect_right([i for i, _ in entries], after) if after else 0
        chunk = entries[start : start + limit]
        out = []
        for mid, gone in chunk:
            if gone:
                t = box.removed[folder.id][mid]
                out.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": t.immutable_id if req.immutable else t.rest_id,
                        "@removed": {"reason": "deleted"},
                    }
                )
            else:
                out.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        **message_json(req, box, box.messages[mid], chosen),
                    }
                )
        path = f"/users/{key}/mailFolders/{fid}/messages/delta"
        body: dict[str, Any] = {"@odata.context": context(req, "Collection(message)")}
        base_state = {
            "g": e.tenant.generation,
            "u": user.id,
            "f": folder.id,
            "sel": sel,
            "ge": after_date,
        }
        if start + limit < len(entries):
            body["@odata.nextLink"] = link(
                req,
                path,
                {
                    "$skiptoken": encode_token(
                        base_state | {"s": since, "un": until, "a": chunk[-1][0], "t": issued}
                    )
                },
            )
        else:
            body["@odata.deltaLink"] = link(
                req,
                path,
                {"$deltatoken": encode_token(base_state | {"s": until, "t": time.time()})},
            )
        body["value"] = out
        headers = _applied(req)
        if req.prefer("odata.maxpagesize"):
            headers["Preference-Applied"] = ", ".join(
                filter(None, [headers.get("Preference-Applied"), f"odata.maxpagesize={limit}"])
            )
        return GraphResponse(body=body, headers=headers)


def _instant(text: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"Invalid date '{text}'.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return iso(moment)


def _with_query(req: GraphRequest, sel: str) -> GraphRequest:
    return replace(req, query={"$select": sel})


@router.add("GET", "/users/{key}/messages/{mid}")
@router.add("GET", "/users/{key}/mailFolders/{fid}/messages/{mid}")
def message(req: GraphRequest, key: str, mid: str, fid: str = "") -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        m = find_message(req, box, mid)
        item = message_json(req, box, m, select(req, MESSAGE_PROPS, "message"))
        return GraphResponse(
            body={"@odata.context": context(req, "messages/$entity"), **item}, headers=_applied(req)
        )


@router.add("GET", "/users/{key}/messages/{mid}/$value")
@router.add("GET", "/users/{key}/mailFolders/{fid}/messages/{mid}/$value")
def message_value(req: GraphRequest, key: str, mid: str, fid: str = "") -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        return GraphResponse(body=find_message(req, box, mid).raw, content_type="text/plain")


def _move(req: GraphRequest, box: Mailbox, m: Message, dest: Folder) -> None:
    req.emulator.tenant.move(
        box, m, dest, new_immutable=req.emulator.throttle.faults.ids_change_on_move
    )


@router.add("POST", "/users/{key}/messages/{mid}/move")
@router.add("POST", "/users/{key}/mailFolders/{fid}/messages/{mid}/move")
def move(req: GraphRequest, key: str, mid: str, fid: str = "") -> GraphResponse:
    _, box = open_mailbox(req, key, write=True)
    destination = (req.body or {}).get("destinationId") if isinstance(req.body, dict) else None
    if not destination:
        raise GraphError(400, "ErrorInvalidRequest", "The destinationId parameter is required.")
    with req.emulator.tenant.lock:
        m = find_message(req, box, mid)
        _move(req, box, m, find_folder(req, box, str(destination)))
        item = message_json(req, box, m, None)
        return GraphResponse(
            201, {"@odata.context": context(req, "messages/$entity"), **item}, _applied(req)
        )


def _log_deletion(req: GraphRequest, box: Mailbox, m: Message, *, permanent: bool) -> None:
    entry = req.emulator.tenant.record_deletion(box, m, permanent=permanent)
    for listener in list(req.emulator.deletion_listeners):
        listener(dict(entry))


@router.add("DELETE", "/users/{key}/messages/{mid}")
@router.add("DELETE", "/users/{key}/mailFolders/{fid}/messages/{mid}")
def delete(req: GraphRequest, key: str, mid: str, fid: str = "") -> GraphResponse:
    """[D] DELETE moves to Deleted Items; from Deleted Items to Recoverable Items."""
    _, box = open_mailbox(req, key, write=True)
    with req.emulator.tenant.lock:
        m = find_message(req, box, mid)
        _log_deletion(req, box, m, permanent=False)
        target = (
            "recoverableitemsdeletions"
            if m.folder_id == box.well_known["deleteditems"]
            else "deleteditems"
        )
        _move(req, box, m, box.folders[box.well_known[target]])
        return GraphResponse(204, None)


@router.add("POST", "/users/{key}/messages/{mid}/permanentDelete")
@router.add("POST", "/users/{key}/mailFolders/{fid}/messages/{mid}/permanentDelete")
def permanent_delete(req: GraphRequest, key: str, mid: str, fid: str = "") -> GraphResponse:
    _, box = open_mailbox(req, key, write=True)
    with req.emulator.tenant.lock:
        m = find_message(req, box, mid)
        _log_deletion(req, box, m, permanent=True)
        req.emulator.tenant.remove(box, m)
        return GraphResponse(204, None)


@router.add("PATCH", "/users/{key}/messages/{mid}")
def patch_message(req: GraphRequest, key: str, mid: str) -> GraphResponse:
    _, box = open_mailbox(req, key, write=True)
    changes = req.body if isinstance(req.body, dict) else {}
    with req.emulator.tenant.lock:
        m = find_message(req, box, mid)
        if "isRead" in changes:
            req.emulator.tenant.touch(box, m, is_read=bool(changes["isRead"]))
        flag = changes.get("flag")
        if isinstance(flag, dict) and "flagStatus" in flag:
            req.emulator.tenant.touch(box, m, flagged=flag["flagStatus"] == "flagged")
        return GraphResponse(
            body={
                "@odata.context": context(req, "messages/$entity"),
                **message_json(req, box, m, None),
            }
        )
