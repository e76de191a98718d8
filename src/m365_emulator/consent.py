"""Entra v2 admin consent (the "Connect Tenant" step) with its consent page, and logout."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from m365_emulator import pages
from m365_emulator.signin import (
    GRAPH_DEFAULT,
    SESSION_COOKIE,
    all_params,
    emu,
    kept_params,
    redirect_allowed,
    sign_in,
    with_query,
    with_session,
)

PERMISSIONS = {
    "User.Read.All": "Read all users' full profiles",
    "Group.Read.All": "Read all groups",
    "Domain.Read.All": "Read domains",
    "Organization.Read.All": "Read organization information",
    "Mail.ReadWrite": "Read and write mail in all mailboxes",
    "MailboxSettings.Read": "Read all user mailbox settings",
    "User.Read": "Sign in and read user profile",
}


async def admin_consent(request: Request) -> Response:
    e = emu(request)
    segment = request.path_params["tenant"]
    params = await all_params(request)
    if segment == "common":
        return pages.error_page(
            "50194",
            "Application is not configured as a multi-tenant application. Use 'organizations' "
            "or a tenant id for admin consent.",
        )
    if segment != "organizations" and not e.tenant_matches(segment):
        return pages.error_page("90002", f"Tenant '{segment}' not found.")
    app = e.tenant.apps.get(params.get("client_id", ""))
    if app is None:
        return pages.error_page(
            "700016", f"Application with identifier '{params.get('client_id', '')}' was not found."
        )
    redirect = params.get("redirect_uri", "")
    if not redirect_allowed(app, redirect):
        return pages.error_page(
            "50011",
            f"The redirect URI '{redirect}' specified in the request does not match the "
            f"redirect URIs configured for the application '{app.client_id}'.",
        )
    state = params.get("state", "")
    user_id, shown, fresh = await sign_in(request, e, params)
    if shown is not None:
        return shown
    if user_id is None:
        return RedirectResponse(
            with_query(redirect, {"error": "login_required", "state": state}), 302
        )
    user = e.tenant.users[user_id]
    decision = params.get("decision")
    if not user.is_admin:
        if decision == "back":
            return RedirectResponse(
                with_query(
                    redirect,
                    {
                        "admin_consent": "True",
                        "error": "access_denied",
                        "state": state,
                        "error_description": "AADSTS90094: Admin consent is required for the "
                        "permissions requested by this application.",
                    },
                ),
                302,
            )
        body = (
            f"<h1>Need admin approval</h1><p>{pages.escape(app.display_name)} needs permission "
            f"to access "
            f"resources in your organization that only an admin can grant. Signed in as "
            f"{pages.escape(user.user_principal_name)}.</p><form "
            f"method='post'>{pages.hidden(kept_params(params))}"
            f"<button name='decision' value='back'>Return to the application without granting "
            f"consent</button></form>"
        )
        return with_session(pages.page("Need admin approval", body), e, user_id, fresh)
    if decision == "accept":
        e.set_consent(True)
        return with_session(
            RedirectResponse(
                with_query(
                    redirect,
                    {
                        "admin_consent": "True",
                        "tenant": e.tenant.id,
                        "scope": params.get("scope", GRAPH_DEFAULT[0]),
                        "state": state,
                    },
                ),
                302,
            ),
            e,
            user_id,
            fresh,
        )
    if decision == "decline":
        return RedirectResponse(
            with_query(
                redirect,
                {
                    "admin_consent": "True",
                    "error": "consent_required",
                    "state": state,
                    "error_description": "AADSTS65004: The resource owner or authorization "
                    "server denied the request.",
                },
            ),
            302,
        )
    items = "".join(
        f"<li><strong>{pages.escape(PERMISSIONS.get(role, role))}</strong> "
        f"<code>{pages.escape(role)}</code>"
        f" (application)</li>"
        for role in app.app_roles
    ) + "".join(
        f"<li>{pages.escape(PERMISSIONS.get(s, s))} <code>{pages.escape(s)}</code> (delegated)</li>"
        for s in app.delegated
        if s not in ("openid", "offline_access")
    )
    body = (
        f"<h1>Permissions requested</h1><p><strong>{pages.escape(app.display_name)}</strong> "
        f"(app id {pages.escape(app.client_id)})</p><p>Signed in as "
        f"{pages.escape(user.user_principal_name)} "
        f"for {pages.escape(e.tenant.display_name)}. This app would like to:</p>"
        f"<ul class='perms'>{items}</ul><p>If you accept, this app will get access to the "
        f"specified "
        f"resources for all users in your organization.</p><form "
        f"method='post'>{pages.hidden(kept_params(params))}"
        f"<button name='decision' value='accept'>Accept</button> "
        f"<button class='secondary' name='decision' value='decline'>Cancel</button></form>"
    )
    return with_session(pages.page("Permissions requested", body), e, user_id, fresh)


async def logout(request: Request) -> Response:
    e = emu(request)
    with e.lock:
        e.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    target = request.query_params.get("post_logout_redirect_uri")
    response: Response = (
        RedirectResponse(target, 302)
        if target
        else pages.page("Signed out", "<h1>You signed out of your account</h1>")
    )
    response.delete_cookie(SESSION_COOKIE)
    return response
