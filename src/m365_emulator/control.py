"""The emulator's control API (``/_emulator/api``): what tests use to flip fault switches,
change the directory, put mail into mailboxes, manage consent and journal rules, and send
messages inside the tenant. JSON in, JSON out; loopback only, no authentication."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m365_emulator.core import Emulator
from m365_emulator.fixture import _group, _member, standard_mailbox
from m365_emulator.journal import Delivery, JournalService
from m365_emulator.model import E3_SKU


def emu(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("a JSON object is expected")
    return data


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def info_dict(e: Emulator, base: str) -> dict[str, Any]:
    t = e.tenant
    return {
        "tenant_id": t.id,
        "tenant_name": t.display_name,
        "default_domain": t.default_domain,
        "initial_domain": t.initial_domain,
        "client_id": e.app.client_id,
        "client_secret": e.app.secret,
        "consented": e.app.consented,
        "redirect_uris": e.app.redirect_uris,
        "authority": base,
        "graph": f"{base}/v1.0",
        "users": len(t.users),
        "groups": len(t.groups),
        "admin_upn": next(u.user_principal_name for u in t.users.values() if u.is_admin),
        "user_password": t.user_password,
        "fixture": e.options.kind,
        "seed": e.options.seed,
    }


async def info(request: Request) -> Response:
    return JSONResponse(info_dict(emu(request), str(request.base_url).rstrip("/")))


async def faults(request: Request) -> Response:
    e = emu(request)
    if request.method == "DELETE":
        e.throttle.reset()
    elif request.method == "POST":
        try:
            data = await body(request)  # never await while holding the lock: every Graph
            with e.throttle.lock:  # request of this event loop takes it (a deadlock)
                e.throttle.faults.update(data)
        except (KeyError, ValueError) as exc:
            return problem(400, f"unknown or bad fault switch: {exc}")
    return JSONResponse({"faults": e.throttle.faults.as_dict(), "stats": dict(e.throttle.stats)})


async def reset_state(request: Request) -> Response:
    e = emu(request)
    await asyncio.to_thread(e.rebuild)
    e.throttle.reset()
    return JSONResponse(info_dict(e, str(request.base_url).rstrip("/")))


async def reset_delta(request: Request) -> Response:
    e = emu(request)
    with e.tenant.lock:
        e.tenant.generation += 1
    return JSONResponse({"generation": e.tenant.generation})


async def expire_tokens(request: Request) -> Response:
    e = emu(request)
    e.token_epoch += 1
    return JSONResponse({"token_epoch": e.token_epoch})


async def consent(request: Request) -> Response:
    e = emu(request)
    data = await body(request)
    e.set_consent(bool(data.get("granted", True)))
    return JSONResponse({"consented": e.app.consented})


async def redirect_uris(request: Request) -> Response:
    e = emu(request)
    data = await body(request)
    e.app.redirect_uris = [str(u) for u in data.get("uris", [])]
    e.save_settings()
    return JSONResponse({"redirect_uris": e.app.redirect_uris})


async def certificates(request: Request) -> Response:
    """Upload a certificate (PEM) for private_key_jwt client authentication."""
    e = emu(request)
    try:
        cert = x509.load_pem_x509_certificate(str((await body(request))["pem"]).encode())
    except (KeyError, ValueError) as exc:
        return problem(400, f"a PEM certificate is expected: {exc}")
    sha1 = cert.fingerprint(hashes.SHA1())  # noqa: S303 - Entra's x5t is the SHA-1 thumbprint
    sha256 = cert.fingerprint(hashes.SHA256())
    forms = [
        base64.urlsafe_b64encode(sha1).decode().rstrip("="),
        base64.urlsafe_b64encode(sha256).decode().rstrip("="),
        sha1.hex().upper(),
    ]
    for form in forms:
        e.app.certificates[form] = cert
    return JSONResponse({"thumbprint": sha1.hex().upper(), "x5t": forms[0]}, status_code=201)


async def users(request: Request) -> Response:
    e = emu(request)
    data = await body(request)
    address = str(data.get("mail") or data.get("userPrincipalName") or "")
    if "@" not in address:
        return problem(400, "mail is required")
    licensed = bool(data.get("mailbox", True))
    user = _member(
        e.tenant,
        address,
        str(data.get("displayName") or address.split("@")[0]),
        licenses=[E3_SKU] if licensed else [],
        has_mailbox=licensed,
        account_enabled=bool(data.get("accountEnabled", True)),
    )
    if licensed and data.get("emptyMailbox"):  # standard folders only, no fixture mail
        e.tenant.set_mailbox(user.id, standard_mailbox(e.tenant, user)[0])
    return JSONResponse(user.graph(), status_code=201)


USER_FIELDS = {
    "displayName": "display_name",
    "accountEnabled": "account_enabled",
    "mail": "mail",
    "userPrincipalName": "user_principal_name",
    "jobTitle": "job_title",
    "department": "department",
    "proxyAddresses": "proxy_addresses",
    "userType": "user_type",
}


async def user(request: Request) -> Response:
    e = emu(request)
    user_id = request.path_params["user_id"]
    if user_id not in e.tenant.users:
        return problem(404, "no such user")
    if request.method == "DELETE":
        e.tenant.delete_user(user_id, permanent=request.query_params.get("permanent") == "1")
        return Response(status_code=204)
    data = await body(request)
    changes = {USER_FIELDS[k]: v for k, v in data.items() if k in USER_FIELDS}
    if "licensed" in data:
        changes["licenses"] = [E3_SKU] if data["licensed"] else []
        changes["has_mailbox"] = bool(data["licensed"])
    return JSONResponse(e.tenant.update_user(user_id, **changes).graph())


async def groups(request: Request) -> Response:
    e = emu(request)
    data = await body(request)
    name = str(data.get("displayName", ""))
    if not name:
        return problem(400, "displayName is required")
    group = _group(
        e.tenant,
        name,
        [str(m) for m in data.get("members", [])],
        kind=str(data.get("kind", "security")),
        mail=str(data.get("mail", "")),
    )
    return JSONResponse(group.graph(), status_code=201)


async def group(request: Request) -> Response:
    e = emu(request)
    group_id = request.path_params["group_id"]
    if group_id not in e.tenant.groups:
        return problem(404, "no such group")
    if request.method == "DELETE":
        e.tenant.delete_group(group_id, permanent=request.query_params.get("permanent") == "1")
        return Response(status_code=204)
    data = await body(request)
    changes = {"display_name": data["displayName"]} if "displayName" in data else {}
    return JSONResponse(e.tenant.update_group(group_id, **changes).graph())


async def members(request: Request) -> Response:
    e = emu(request)
    group_id = request.path_params["group_id"]
    try:
        if request.method == "POST":
            e.tenant.add_member(group_id, str((await body(request))["id"]))
        else:
            e.tenant.remove_member(group_id, request.path_params["member_id"])
    except KeyError as exc:
        return problem(404, f"not found: {exc}")
    return Response(status_code=204)


async def mailbox_messages(request: Request) -> Response:
    """Put a message into a folder (``raw``: text, or ``raw_base64``)."""
    e = emu(request)
    data = await body(request)
    box = e.tenant.mailbox(request.path_params["user_id"])
    if box is None:
        return problem(404, "no mailbox")
    folder = e.tenant.resolve_folder(box, str(data.get("folder", "inbox")))
    if folder is None:
        return problem(404, "no such folder")
    raw = (
        base64.b64decode(data["raw_base64"])
        if "raw_base64" in data
        else str(data.get("raw", "")).encode()
    )
    message = e.tenant.deliver(
        box,
        folder,
        raw,
        key=("control", time.time_ns()),
        is_read=bool(data.get("isRead", False)),
        flagged=bool(data.get("flagged", False)),
    )
    return JSONResponse(
        {"id": message.rest_id, "immutableId": message.immutable_id, "folderId": folder.id},
        status_code=201,
    )


async def mailbox_bulk(request: Request) -> Response:
    """Load many messages into one folder at once (benchmarks, big tests): ``raw_base64``
    a list; ``folder`` a well-known name or id (default inbox); ``path`` optional child
    folders below it (``"Lists/R-help"``), created when missing. Answers the count and the
    folder id; the messages' ids come from delta queries as usual."""
    e = emu(request)
    data = await body(request)
    box = e.tenant.mailbox(request.path_params["user_id"])
    if box is None:
        return problem(404, "no mailbox")
    folder = e.tenant.resolve_folder(box, str(data.get("folder", "inbox")))
    if folder is None:
        return problem(404, "no such folder")
    items = data.get("raw_base64")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return problem(400, "raw_base64 must be a list of base64 strings")
    try:
        raws = [base64.b64decode(i, validate=True) for i in items]
    except ValueError as exc:
        return problem(400, f"raw_base64: {exc}")
    is_read = bool(data.get("isRead", False))

    def load() -> str:
        target = folder
        with e.tenant.lock:
            for name in [p for p in str(data.get("path", "")).split("/") if p.strip()]:
                target = e.tenant.child_folder(box, target, name.strip())
            for raw in raws:
                e.tenant.deliver(box, target, raw, key=("bulk", box.seq), is_read=is_read)
        return target.id

    folder_id = await asyncio.to_thread(load)
    return JSONResponse({"count": len(raws), "folderId": folder_id}, status_code=201)


async def deletions(request: Request) -> Response:
    """What Graph clients deleted: user, ids, folder path, SHA-256 of the MIME, time."""
    return JSONResponse({"deletions": list(emu(request).tenant.deletions)})


def delivery_dict(d: Delivery) -> dict[str, Any]:
    return {
        "rule": d.rule,
        "recipient": d.recipient,
        "smarthost": d.smarthost,
        "variant": d.variant,
        "ok": d.ok,
        "error": d.error,
        "at": d.at,
    }


async def send(request: Request) -> Response:
    e = emu(request)
    journal: JournalService = e.journal
    data = await body(request)
    try:
        sent = await asyncio.to_thread(
            journal.send,
            str(data.get("from", "")),
            list(data.get("to", [])),
            list(data.get("cc", [])),
            list(data.get("bcc", [])),
            str(data.get("subject", "")),
            str(data.get("body", "")),
            str(data.get("variant", "standard")),
        )
    except ValueError as exc:
        return problem(400, str(exc))
    return JSONResponse(
        {
            "internetMessageId": sent.message_id,
            "deliveredTo": sent.delivered_to,
            "reports": [delivery_dict(r) for r in sent.reports],
        }
    )


async def journal_rules(request: Request) -> Response:
    e = emu(request)
    journal: JournalService = e.journal
    if request.method == "POST":
        data = await body(request)
        try:
            rule = journal.add_rule(
                **{
                    k: data[k]
                    for k in (
                        "name",
                        "journal_address",
                        "scope",
                        "recipient",
                        "enabled",
                        "smarthost",
                    )
                    if k in data
                }
            )
        except (TypeError, ValueError) as exc:
            return problem(400, str(exc))
        e.save_settings()
        return JSONResponse({"id": rule.id, **journal.export()[-1]}, status_code=201)
    return JSONResponse({"rules": journal.export()})


async def journal_rule(request: Request) -> Response:
    e = emu(request)
    if not e.journal.delete_rule(request.path_params["rule_id"]):
        return problem(404, "no such rule")
    e.save_settings()
    return Response(status_code=204)


async def journal_smarthost(request: Request) -> Response:
    """Where journal reports go unless a rule names its own smarthost ("host:port")."""
    e = emu(request)
    if request.method == "POST":
        value = str((await body(request)).get("smarthost", ""))
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            return problem(400, "smarthost must be host:port")
        e.journal.smarthost = value
    return JSONResponse({"smarthost": e.journal.smarthost, "ndr_to": e.journal.ndr_to})


async def journal_log(request: Request) -> Response:
    e = emu(request)
    if request.method == "POST":
        await asyncio.to_thread(e.journal.flush)
    return JSONResponse(
        {"log": [delivery_dict(d) for d in e.journal.log], "queued": len(e.journal.queue)}
    )


def routes() -> list[Route]:
    prefix = "/_emulator/api"
    return [
        Route(f"{prefix}/info", info),
        Route(f"{prefix}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{prefix}/reset-delta", reset_delta, methods=["POST"]),
        Route(f"{prefix}/reset", reset_state, methods=["POST"]),
        Route(f"{prefix}/expire-tokens", expire_tokens, methods=["POST"]),
        Route(f"{prefix}/consent", consent, methods=["POST"]),
        Route(f"{prefix}/redirect-uris", redirect_uris, methods=["POST"]),
        Route(f"{prefix}/certificates", certificates, methods=["POST"]),
        Route(f"{prefix}/users", users, methods=["POST"]),
        Route(f"{prefix}/users/{{user_id}}", user, methods=["PATCH", "DELETE"]),
        Route(f"{prefix}/groups", groups, methods=["POST"]),
        Route(f"{prefix}/groups/{{group_id}}", group, methods=["PATCH", "DELETE"]),
        Route(f"{prefix}/groups/{{group_id}}/members", members, methods=["POST"]),
        Route(f"{prefix}/groups/{{group_id}}/members/{{member_id}}", members, methods=["DELETE"]),
        Route(f"{prefix}/mailboxes/{{user_id}}/messages", mailbox_messages, methods=["POST"]),
        Route(f"{prefix}/mailboxes/{{user_id}}/bulk", mailbox_bulk, methods=["POST"]),
        Route(f"{prefix}/deletions", deletions),
        Route(f"{prefix}/send", send, methods=["POST"]),
        Route(f"{prefix}/journal-rules", journal_rules, methods=["GET", "POST"]),
        Route(f"{prefix}/journal-rules/{{rule_id}}", journal_rule, methods=["DELETE"]),
        Route(f"{prefix}/journal-log", journal_log, methods=["GET", "POST"]),
        Route(f"{prefix}/journal-smarthost", journal_smarthost, methods=["GET", "POST"]),
    ]
