"""Pages: the emulator's own admin page (``/_emulator/admin``: tenant overview, consent,
fault switches, send a message) and the Purview "Journal rules" pages a tenant admin uses
(``/purview/journalrules``, signed in as a Global/Exchange admin of the tenant)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from m365_emulator import pages
from m365_emulator.core import Emulator
from m365_emulator.faults import Faults
from m365_emulator.journal import SCOPES, VARIANTS
from m365_emulator.signin import SESSION_COOKIE, check_login, form

NAV = (
    "<nav><a href='/_emulator/admin'>Emulator</a><a href='/purview/journalrules'>Purview: "
    "Journal rules</a><a href='/_emulator/api/info'>info (JSON)</a></nav>"
)


RULE_COLUMNS = (
    "Name",
    "Send journal reports to",
    "Journal messages sent or received from",
    "Type of message",
    "Status",
    "",
)


def emu(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _admin_upn(e: Emulator) -> str:
    return next(u.user_principal_name for u in e.tenant.users.values() if u.is_admin)


def _overview(e: Emulator, base: str) -> str:
    t = e.tenant
    mailboxes = sum(1 for u in t.users.values() if u.has_mailbox)
    rows = [
        ("Tenant", f"{escape(t.display_name)} <code>{escape(t.id)}</code>"),
        (
            "Domains",
            ", ".join(
                escape(d.id)
                + (" (default)" if d.is_default else "")
                + ("" if d.is_verified else " (unverified)")
                for d in t.domains
            ),
        ),
        (
            "Directory",
            f"{len(t.users)} users ({mailboxes} with a mailbox), {len(t.groups)} groups; "
            f"fixture {escape(e.options.kind)}, seed {escape(e.options.seed)}",
        ),
        ("Authority / Graph", f"<code>{escape(base)}</code> / <code>{escape(base)}/v1.0</code>"),
        ("App (client id)", f"<code>{escape(e.app.client_id)}</code>"),
        ("Client secret", f"<code>{escape(e.app.secret)}</code>"),
        ("Admin consent", "granted" if e.app.consented else "not granted"),
        (
            "Redirect URIs",
            escape(", ".join(e.app.redirect_uris) or "any loopback URI (none registered)"),
        ),
        (
            "Sign-in",
            f"admin <code>{escape(_admin_upn(e))}</code>; "
            f"every user's password <code>{escape(t.user_password)}</code>",
        ),
    ]
    table = pages.table(["", ""], [(escape(k), v) for k, v in rows])
    consent = "revoke" if e.app.consented else "grant"
    return (
        f"<h1>Microsoft 365 emulator</h1>{NAV}{table}<form method='post' "
        f"action='/_emulator/admin/consent'>"
        f"<button name='consent' value='{consent}'>{consent.title()} admin consent</button></form>"
    )


def _faults_form(e: Emulator) -> str:
    current = e.throttle.faults
    inputs = []
    for f in fields(Faults):
        value = getattr(current, f.name)
        label = escape(f.name)
        if isinstance(value, bool):
            box = (
                f"<input type='checkbox' name='{label}' value='true'{' checked' if value else ''}>"
            )
            inputs.append((label, box + f"<input type='hidden' name='{label}' value='false'>"))
        elif isinstance(value, list):
            inputs.append(
                (label, f"<input type='text' name='{label}' value='{escape(','.join(value))}'>")
            )
        elif value is None:
            inputs.append(
                (label, f"<input type='text' name='{label}' value='' placeholder='all app roles'>")
            )
        else:
            inputs.append(
                (label, f"<input type='text' name='{label}' value='{escape(str(value))}'>")
            )
    stats = (
        ", ".join(f"{escape(k)}: {v}" for k, v in sorted(e.throttle.stats.items())) or "none yet"
    )
    return (
        f"<h2>Throttling and fault switches</h2><form method='post' "
        f"action='/_emulator/admin/faults'>"
        f"{pages.table(['switch', 'value'], inputs)}<button>Save switches</button> "
        f"<button name='action' value='reset' class='secondary'>Reset to defaults</button> "
        f"<button name='action' value='reset-delta' class='secondary'>Invalidate delta tokens "
        f"(410)</button> "
        f"<button name='action' value='expire-tokens' class='secondary'>Expire access "
        f"tokens</button></form>"
        f"<p>Counters: {stats}</p>"
    )


def _send_form(e: Emulator) -> str:
    senders = sorted(u.mail for u in e.tenant.users.values() if u.has_mailbox and u.mail)
    options = "".join(f"<option>{escape(s)}</option>" for s in senders)
    variants = "".join(f"<option>{v}</option>" for v in VARIANTS)
    log = [
        (
            escape(d.at),
            escape(d.recipient),
            escape(d.smarthost),
            escape(d.variant),
            "delivered" if d.ok else escape(d.error),
        )
        for d in reversed(e.journal.log[-20:])
    ]
    return (
        f"<h2>Send a message inside the tenant</h2><p>Delivered to the recipients' mailboxes and "
        f"journaled by the <a href='/purview/journalrules'>journal rules</a>.</p>"
        f"<form method='post' action='/_emulator/admin/send'><label>From<select "
        f"name='from'>{options}</select></label>"
        f"<label>To (comma-separated)<input type='text' name='to' required></label>"
        f"<label>Cc<input type='text' name='cc'></label><label>Bcc<input type='text' "
        f"name='bcc'></label>"
        f"<label>Subject<input type='text' name='subject' required></label>"
        f"<label>Body<textarea name='body' rows='4'></textarea></label>"
        f"<label>Journal variant<select "
        f"name='variant'>{variants}</select></label><button>Send</button></form>"
        f"<h3>Journal deliveries ({len(e.journal.queue)} queued)</h3>"
        f"{pages.table(['at', 'to', 'smarthost', 'variant', 'result'], log)}"
        f"<form method='post' action='/_emulator/admin/flush'><button class='secondary'>Retry "
        f"queued reports</button></form>"
    )


async def admin_page(request: Request) -> Response:
    e = emu(request)
    notice = request.query_params.get("notice", "")
    banner = f"<p role='status'><strong>{escape(notice)}</strong></p>" if notice else ""
    base = str(request.base_url).rstrip("/")
    return pages.page(
        "Microsoft 365 emulator",
        banner + _overview(e, base) + _faults_form(e) + _send_form(e),
        wide=True,
    )


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse(f"/_emulator/admin?notice={quote(notice)}", status_code=303)


async def admin_consent(request: Request) -> Response:
    e = emu(request)
    e.set_consent((await form(request)).get("consent") == "grant")
    return _back(f"Admin consent {'granted' if e.app.consented else 'revoked'}.")


async def _raw_form(request: Request) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl((await request.body()).decode(), keep_blank_values=True)


async def admin_faults(request: Request) -> Response:
    e = emu(request)
    pairs = await _raw_form(request)
    action = dict(pairs).get("action", "")
    if action == "reset":
        e.throttle.reset()
        return _back("Fault switches reset.")
    if action == "reset-delta":
        with e.tenant.lock:
            e.tenant.generation += 1
        return _back("Delta tokens invalidated: the next delta call answers 410.")
    if action == "expire-tokens":
        e.token_epoch += 1
        return _back("Access tokens expired.")
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key == "action" or (key in values and values[key] == "true"):
            continue  # a checked box comes before its hidden "false"
        values[key] = value
    if "no_mailbox" in values:
        values["no_mailbox"] = [v.strip() for v in values["no_mailbox"].split(",") if v.strip()]
    roles = values.pop("roles", "")
    try:
        with e.throttle.lock:
            e.throttle.faults.update(values)
            e.throttle.faults.roles = [r.strip() for r in roles.split(",") if r.strip()] or None
    except (KeyError, ValueError) as exc:
        return _back(f"Not saved: {exc}")
    return _back("Fault switches saved.")


def _addresses(text: str) -> list[str]:
    return [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]


async def admin_send(request: Request) -> Response:
    e = emu(request)
    data = await form(request)
    try:
        sent = await asyncio.to_thread(
            e.journal.send,
            data.get("from", ""),
            _addresses(data.get("to", "")),
            _addresses(data.get("cc", "")),
            _addresses(data.get("bcc", "")),
            data.get("subject", ""),
            data.get("body", ""),
            data.get("variant", "standard"),
        )
    except ValueError as exc:
        return _back(f"Not sent: {exc}")
    ok = sum(1 for r in sent.reports if r.ok)
    return _back(
        f"Sent {sent.message_id}: delivered to {len(sent.delivered_to)} mailboxes, "
        f"{ok} of {len(sent.reports)} journal reports delivered."
    )


async def admin_flush(request: Request) -> Response:
    results = await asyncio.to_thread(emu(request).journal.flush)
    return _back(
        f"Retried {len(results)} queued reports, {sum(1 for r in results if r.ok)} delivered."
    )


# --- Purview ---------------------------------------------------------------------------
def _purview_admin(request: Request, e: Emulator) -> str | None:
    user_id = e.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    user = e.tenant.users.get(user_id or "")
    return user.user_principal_name if user is not None and user.is_admin else None


async def purview_signin(request: Request) -> Response:
    e = emu(request)
    data = await form(request) if request.method == "POST" else dict(request.query_params)
    target = data.get("next", "/purview/journalrules")
    if not target.startswith("/purview/"):
        target = "/purview/journalrules"
    if request.method == "POST":
        user_id, problem = check_login(e, data.get("login", ""), data.get("passwd", ""))
        if user_id and not e.tenant.users[user_id].is_admin:
            user_id, problem = (
                None,
                "You need the Exchange or Global Administrator role to open Purview settings.",
            )
        if user_id:
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                SESSION_COOKIE, e.new_session(user_id), httponly=True, secure=True, samesite="none"
            )
            return response
        return pages.sign_in_form(
            "/purview/signin", {"next": target}, hint=data.get("login", ""), error=problem
        )
    return pages.sign_in_form("/purview/signin", {"next": target})


def _need_admin(request: Request, e: Emulator) -> Response | None:
    if _purview_admin(request, e) is None:
        return RedirectResponse(f"/purview/signin?next={quote(request.url.path)}", status_code=303)
    return None


async def journal_rules(request: Request) -> Response:
    e = emu(request)
    if (denied := _need_admin(request, e)) is not None:
        return denied
    if request.method == "POST":
        data = await form(request)
        e.journal.ndr_to = data.get("ndr_to", "").strip()
        return RedirectResponse("/purview/journalrules", status_code=303)
    rows = [
        (
            escape(r.name),
            escape(r.journal_address),
            escape(r.recipient or "Everyone"),
            escape(SCOPES[r.scope]),
            "On" if r.enabled else "Off",
            f"<form method='post' action='/purview/journalrules/{escape(r.id)}/delete'><button "
            f"class='secondary'>Delete</button></form>",
        )
        for r in e.journal.rules
    ]
    body = (
        f"<h1>Journal rules</h1>{NAV}<p>Signed in as "
        f"{escape(_purview_admin(request, e) or '')}. Data lifecycle "
        f"management &gt; Exchange (legacy) &gt; Journal rules.</p><p><a class='button' "
        f"href='/purview/journalrules/new'>New rule</a></p>"
        f"{pages.table(RULE_COLUMNS, rows)}"
        f"<h2>Send undeliverable journal reports to</h2><form method='post'><input "
        f"type='email' name='ndr_to' "
        f"value='{escape(e.journal.ndr_to)}' placeholder='alternate journaling "
        f"mailbox'><button>Save</button></form>"
    )
    return pages.page("Journal rules", body, wide=True)


async def new_journal_rule(request: Request) -> Response:
    e = emu(request)
    if (denied := _need_admin(request, e)) is not None:
        return denied
    data = await form(request) if request.method == "POST" else {}
    step, error = data.get("step", ""), ""
    values = {k: data.get(k, "") for k in ("journal_address", "name", "recipient", "scope")}
    values["scope"] = values["scope"] or "global"
    if step == "submit":
        try:
            e.journal.add_rule(**values)
        except ValueError as exc:
            error = str(exc)
        else:
            e.save_settings()
            return RedirectResponse("/purview/journalrules", status_code=303)
    if step == "review" and values["journal_address"] and values["name"]:
        summary = pages.table(
            ["", ""],
            [
                ("Send journal reports to", escape(values["journal_address"])),
                ("Journal rule name", escape(values["name"])),
                (
                    "Journal messages sent or received from",
                    escape(values["recipient"] or "Everyone"),
                ),
                (
                    "Type of message to journal",
                    escape(SCOPES.get(values["scope"], values["scope"])),
                ),
            ],
        )
        body = (
            f"<h1>Review and finish</h1>{summary}<form method='post'>{pages.hidden(values)}"
            f"<button name='step' value='edit' class='secondary'>Back</button> <button "
            f"name='step' value='submit'>Submit</button></form>"
        )
        return pages.page("New journal rule", body, wide=True)
    scopes = "".join(
        f"<label><input type='radio' name='scope' "
        f"value='{k}'{' checked' if k == values['scope'] else ''}> {v}</label><br>"
        for k, v in SCOPES.items()
    )
    problem = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    body = (
        f"<h1>New journal rule</h1>{problem}<form method='post'>"
        f"<label>Send journal reports to<input type='email' name='journal_address' "
        f"value='{escape(values['journal_address'])}' required></label>"
        f"<label>Journal rule name<input type='text' name='name' "
        f"value='{escape(values['name'])}' required></label>"
        f"<label>Journal messages sent or received from (a user or group address; empty = Everyone)"
        f"<input type='text' name='recipient' value='{escape(values['recipient'])}'></label>"
        f"<fieldset><legend>Type of message to journal</legend>{scopes}</fieldset>"
        f"<button name='step' value='review'>Next</button></form>"
    )
    return pages.page("New journal rule", body, wide=True)


async def delete_journal_rule(request: Request) -> Response:
    e = emu(request)
    if (denied := _need_admin(request, e)) is not None:
        return denied
    e.journal.delete_rule(request.path_params["rule_id"])
    e.save_settings()
    return RedirectResponse("/purview/journalrules", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/_emulator/admin", admin_page),
        Route("/_emulator/admin/consent", admin_consent, methods=["POST"]),
        Route("/_emulator/admin/faults", admin_faults, methods=["POST"]),
        Route("/_emulator/admin/send", admin_send, methods=["POST"]),
        Route("/_emulator/admin/flush", admin_flush, methods=["POST"]),
        Route("/purview/signin", purview_signin, methods=["GET", "POST"]),
        Route("/purview/journalrules", journal_rules, methods=["GET", "POST"]),
        Route("/purview/journalrules/new", new_journal_rule, methods=["GET", "POST"]),
        Route("/purview/journalrules/{rule_id}/delete", delete_journal_rule, methods=["POST"]),
    ]
