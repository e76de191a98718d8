"""Graph mail routes: mailboxSettings, mailFolders (+ childFolders, delta), messages (list,
get, $value, per-folder delta, move, DELETE, permanentDelete, PATCH)."""

from __future__ import annotations

import bisect
import time
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
    project,
    router,
    select,
    top,
)
from m365_emulator.model import Folder, Mailbox, Message, User

NO_MAILBOX = ("MailboxNotEnabledForRESTAPI", "REST API is not yet supported for this mailbox.")
ITEM_NOT_FOUND = ("ErrorItemNotFound", "The specified object was not found in the store.")
MESSAGE_DEFAULT = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
MESSAGE_PROPS = (*MESSAGE_DEFAULT, "body", "uniqueBody")
FOLDER_PROPS = (
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
)


def mailbox_user(req: GraphRequest, key: str) -> str | None:
    """The user id a mailbox request is about (for the per-mailbox limits)."""
    user = req.emulator.tenant.find_user(key) if key != "me" else None
    return user.id if user else key


def open_mailbox(req: GraphRequest, key: str, *, write: bool = False) -> tuple[User, Mailbox]:
    tenant = req.emulator.tenant
    user = (
        tenant.find_user(req.principal.user_id or "")
        if key.lower() == "me"
        else tenant.find_user(key)
    )
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    p = req.principal
    if p.user_id is not None:
        scopes = {s.lower() for s in p.scopes}
        if p.user_id != user.id or not scopes & {"mail.read", "mail.readwrite"}:
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
    else:
        roles = set(p.roles)
        wanted = (
            {"Mail.ReadWrite"} if write else {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"}
        )
        if not roles & wanted:
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
    box = None if user.id in req.emulator.throttle.faults.no_mailbox else tenant.mailbox(user.id)
    if box is None:
        raise GraphError(404, *NO_MAILBOX)
    return user, box


def find_folder(req: GraphRequest, box: Mailbox, key: str) -> Folder:
    folder = req.emulator.tenant.resolve_folder(box, key)
    if folder is None:
        raise GraphError(404, *ITEM_NOT_FOUND)
    return folder


def find_message(req: GraphRequest, box: Mailbox, key: str) -> Message:
    message = req.emulator.tenant.find_message(box, key)
    if message is None:
        raise GraphError(404, *ITEM_NOT_FOUND)
    return message


def folder_json(box: Mailbox, folder: Folder) -> dict[str, Any]:
    children = [f for f in box.folders.values() if f.parent_id == folder.id]
    item: dict[str, Any] = {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(children),
        "unreadItemCount": sum(1 for m in folder.messages if not box.messages[m].is_read),
        "totalItemCount": len(folder.messages),
        "sizeInBytes": sum(len(box.messages[m].raw) for m in folder.messages),
        "isHidden": folder.is_hidden,
    }
    if folder.search_folder:
        item = {
            "@odata.type": "#microsoft.graph.mailSearchFolder",
            **item,
            "isSupported": True,
            "includeNestedFolders": True,
            "filterQuery": "isRead eq false",
        }
    return item


def _address(pair: tuple[str, str]) -> dict[str, Any]:
    return {"emailAddress": {"name": pair[0] or pair[1], "address": pair[1]}}


def message_json(
    req: GraphRequest, box: Mailbox, m: Message, chosen: list[str] | None
) -> dict[str, Any]:
    mid = m.immutable_id if req.immutable else m.rest_id
    change_key = f"CQAAABYAAA{m.immutable_id[-12:]}{m.change:04d}"
    full: dict[str, Any] = {
        "id": mid,
        "createdDateTime": m.received,
        "lastModifiedDateTime": m.received,
        "changeKey": change_key,
        "categories": [],
        "receivedDateTime": m.received,
        "sentDateTime": m.sent,
        "hasAttachments": b"content-disposition: attachment" in m.raw.lower(),
        "internetMessageId": m.internet_message_id,
        "subject": m.subject,
        "bodyPreview": m.body_preview,
        "importance": "normal",
        "parentFolderId": m.folder_id,
        "conversationId": "AAQkAD" + m.immutable_id[-24:],
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": m.is_read,
        "isDraft": False,
        "webLink": f"https://outlook.office365.com/owa/?ItemID={m.rest_id}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "sender": _address(m.sender),
        "from": _address(m.sender),
        "toRecipients": [_address(a) for a in m.to],
        "ccRecipients": [_address(a) for a in m.cc],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "flagged" if m.flagged else "notFlagged"},
    }
    if chosen is not None and ("body" in chosen or "uniqueBody" in chosen):
        full["body"] = full["uniqueBody"] = {"contentType": "text", "content": m.body_preview}
    item = {"@odata.etag": f'W/"{change_key}"', **project(full, chosen, MESSAGE_DEFAULT)}
    return item


@router.add("GET", "/users/{key}/mailboxSettings")
def mailbox_settings(req: GraphRequest, key: str) -> GraphResponse:
    p = req.principal
    if p.user_id is None and not set(p.roles) & {
        "MailboxSettings.Read",
        "MailboxSettings.ReadWrite",
    }:
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    _, box = open_mailbox(req, key) if p.user_id else _box_settings(req, key)
    body = {
        "@odata.context": context(req, f"users('{key}')/mailboxSettings"),
        "archiveFolder": box.well_known.get("archive"),
        "timeZone": box.time_zone,
        "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all"},
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "user",
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
    }
    return GraphResponse(body=body)


def _box_settings(req: GraphRequest, key: str) -> tuple[User, Mailbox]:
    tenant = req.emulator.tenant
    user = tenant.find_user(key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    box = None if user.id in req.emulator.throttle.faults.no_mailbox else tenant.mailbox(user.id)
    if box is None:
        raise GraphError(404, *NO_MAILBOX)
    return user, box


def _folder_page(req: GraphRequest, box: Mailbox, parent: Folder) -> GraphResponse:
    limit = top(req, 10, 1000)
    chosen = select(req, FOLDER_PROPS, "mailFolder")
    hidden = req.query.get("includeHiddenFolders", "").lower() == "true"
    folders = [
        f for f in box.folders.values() if f.parent_id == parent.id and (hidden or not f.is_hidden)
    ]
    folders.sort(key=lambda f: f.display_name.lower())
    skip = int(req.query.get("$skip", "0") or 0)
    out = [
        project(folder_json(box, f), chosen, FOLDER_PROPS)
        | ({"@odata.type": "#microsoft.graph.mailSearchFolder"} if f.search_folder else {})
        for f in folders[skip : skip + limit]
    ]
    body: dict[str, Any] = {"@odata.context": context(req, "mailFolders"), "value": out}
    if skip + limit < len(folders):
        params = {**req.query, "$skip": str(skip + limit)}
        body = {
            "@odata.context": body["@odata.context"],
            "@odata.nextLink": link(req, req.path, params),
            "value": out,
        }
    return GraphResponse(body=body)


@router.add("GET", "/users/{key}/mailFolders/delta")
def folders_delta(req: GraphRequest, key: str) -> GraphResponse:
    user, box = open_mailbox(req, key)
    e = req.emulator
    token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
    with e.tenant.lock:
        since, after = None, ""
        if token:
            data = decode_token(token, "delta")
            if (
                data.get("g") != e.tenant.generation
                or data.get("u") != user.id
                or (req.query.get("$deltatoken") and e.throttle.faults.delta_reset)
            ):
                raise GraphError(
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found; re-sync is required.",
                )
            since, after = data.get("s"), data.get("a", "")
            until = int(data.get("un", box.seq)) if req.query.get("$skiptoken") else box.seq
        else:
            until = box.seq
        root = box.well_known["msgfolderroot"]
        under = _subtree(box, root)
        ids = sorted(
            f
            for f in under
            if box.folders[f].version <= until and (since is None or box.folders[f].version > since)
        )
        limit = page_size(req, 100, 1000)
        start = bisect.bisect_right(ids, after) if after else 0
        chunk = ids[start : start + limit]
        out = [folder_json(box, box.folders[f]) for f in chunk]
        if since is not None and start + limit >= len(ids):
            out += [
                {"id": f, "@removed": {"reason": "deleted"}}
                for f, seq in box.removed_folders.items()
                if since < seq <= until
            ]
        body: dict[str, Any] = {"@odata.context": context(req, "Collection(mailFolder)")}
        path = f"/users/{key}/mailFolders/delta"
        if start + limit < len(ids):
            state = {
                "g": e.tenant.generation,
                "u": user.id,
                "s": since,
                "un": until,
                "a": chunk[-1],
            }
            body["@odata.nextLink"] = link(req, path, {"$skiptoken": encode_token(state)})
        else:
            state = {"g": e.tenant.generation, "u": user.id, "s": until, "t": time.time()}
            body["@odata.deltaLink"] = link(req, path, {"$deltatoken": encode_token(state)})
        body["value"] = out
        return GraphResponse(body=body)


def _subtree(box: Mailbox, root: str) -> list[str]:
    out, queue = [], [root]
    while queue:
        parent = queue.pop()
        for f in box.folders.values():
            if f.parent_id == parent:
                out.append(f.id)
                queue.append(f.id)
    return out


@router.add("GET", "/users/{key}/mailFolders")
def mail_folders(req: GraphRequest, key: str) -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        return _folder_page(req, box, box.folders[box.well_known["msgfolderroot"]])


@router.add("GET", "/users/{key}/mailFolders/{fid}")
def mail_folder(req: GraphRequest, key: str, fid: str) -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        folder = find_folder(req, box, fid)
        item = project(
            folder_json(box, folder), select(req, FOLDER_PROPS, "mailFolder"), FOLDER_PROPS
        )
        return GraphResponse(body={"@odata.context": context(req, "mailFolders/$entity"), **item})


@router.add("GET", "/users/{key}/mailFolders/{fid}/childFolders")
def child_folders(req: GraphRequest, key: str, fid: str) -> GraphResponse:
    _, box = open_mailbox(req, key)
    with req.emulator.tenant.lock:
        return _folder_page(req, box, find_folder(req, box, fid))
