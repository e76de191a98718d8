"""Entra ID over real HTTPS: discovery, JWKS, client credentials, auth code + PKCE, consent."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest

from m365_emulator.testing import GRAPH_SCOPE, EmulatorHandle

REDIRECT = "http://127.0.0.1:8000/adminaccess/directory/entra/callback"


def _jwks_key(m365: EmulatorHandle, client: httpx.Client, token: str) -> jwt.PyJWK:
    config = client.get(f"{m365.authority}/v2.0/.well-known/openid-configuration").json()
    keys = client.get(config["jwks_uri"]).json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid))


def test_discovery_and_client_credentials_token_verifies_against_jwks(m365: EmulatorHandle) -> None:
    with m365.http() as client:
        config = client.get(f"{m365.authority}/v2.0/.well-known/openid-configuration").json()
        assert config["issuer"] == f"{m365.base_url}/{m365.tenant_id}/v2.0"
        assert config["token_endpoint"] == f"{m365.authority}/oauth2/v2.0/token"
        common = client.get(
            f"{m365.base_url}/organizations/v2.0/.well-known/openid-configuration"
        ).json()
        assert common["issuer"].endswith("/{tenantid}/v2.0")
        unknown = client.get(
            f"{m365.base_url}/no-such-tenant.example/v2.0/.well-known/openid-configuration"
        )
        assert unknown.status_code == 400
        response = client.post(
            config["token_endpoint"],
            data={
                "client_id": m365.client_id,
                "client_secret": m365.client_secret,
                "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials",
                "client_info": "1",
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
        assert "refresh_token" not in body
        key = _jwks_key(m365, client, body["access_token"])
        claims = jwt.decode(
            body["access_token"],
            key.key,
            algorithms=["RS256"],
            audience="https://graph.microsoft.com",
        )
        assert claims["tid"] == m365.tenant_id and claims["appid"] == m365.client_id
        assert "User.Read.All" in claims["roles"] and "Mail.ReadWrite" in claims["roles"]
        tampered = body["access_token"][:-4] + (
            "AAAA" if not body["access_token"].endswith("AAAA") else "BBBB"
        )
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(
                tampered, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com"
            )


def test_token_errors_follow_entra(m365: EmulatorHandle) -> None:
    form = {
        "client_id": m365.client_id,
        "client_secret": "wrong",
        "scope": GRAPH_SCOPE,
        "grant_type": "client_credentials",
    }
    with m365.http() as client:
        bad = client.post(f"{m365.authority}/oauth2/v2.0/token", data=form)
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        assert bad.json()["error_codes"] == [7000215]
        assert bad.json()["error_description"].startswith("AADSTS7000215:")
        scope = client.post(
            f"{m365.authority}/oauth2/v2.0/token",
            data={**form, "client_secret": m365.client_secret, "scope": "User.Read"},
        )
        assert scope.json()["error"] == "invalid_scope"
        m365.set_faults(secret_expired=True)
        expired = client.post(
            f"{m365.authority}/oauth2/v2.0/token",
            data={**form, "client_secret": m365.client_secret},
        )
        assert expired.json()["error_codes"] == [7000222]
        m365.reset_faults()
        m365.set_consent(False)
        revoked = client.post(
            f"{m365.authority}/oauth2/v2.0/token",
            data={**form, "client_secret": m365.client_secret},
        )
        assert revoked.status_code == 400 and revoked.json()["error"] == "unauthorized_client"
        assert revoked.json()["error_codes"] == [700016]
        wrong_tenant = client.post(f"{m365.base_url}/contoso.example/oauth2/v2.0/token", data=form)
        assert wrong_tenant.json()["error_codes"] == [90002]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    return verifier, challenge


def _sign_in(
    client: httpx.Client, page: httpx.Response, login: str, password: str
) -> httpx.Response:
    action = re.search(r"<form method='post' action='([^']+)'", page.text)
    assert action, page.text
    fields = dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", page.text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    return client.post(
        urljoin(str(page.url), action.group(1)),
        data={**fields, "login": login, "passwd": password, "step": "signin"},
    )


def test_auth_code_with_pkce_signs_in_an_emulated_user(m365: EmulatorHandle) -> None:
    verifier, challenge = _pkce()
    params = {
        "client_id": m365.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile email offline_access",
        "state": "st4te",
        "nonce": "n0nce",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with m365.http() as client:
        page = client.get(f"{m365.authority}/oauth2/v2.0/authorize", params=params)
        assert page.status_code == 200 and "Sign in" in page.text
        wrong = _sign_in(client, page, "kenneth.lay@enron.com", "nope")
        assert "AADSTS50126" in wrong.text
        done = _sign_in(client, page, "kenneth.lay@enron.com", m365.user_password)
        assert done.status_code == 302
        query = parse_qs(urlsplit(done.headers["location"]).query)
        assert query["state"] == ["st4te"]
        code = query["code"][0]
        token_url = f"{m365.authority}/oauth2/v2.0/token"
        base = {
            "grant_type": "authorization_code",
            "client_id": m365.client_id,
            "code": code,
            "redirect_uri": REDIRECT,
            "client_secret": m365.client_secret,
            "scope": "openid profile email offline_access",
        }
        refused = client.post(token_url, data={**base, "code_verifier": verifier + "x"})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        # The code was consumed by the failed attempt: sign in again (the session skips the form).
        again = client.get(f"{m365.authority}/oauth2/v2.0/authorize", params=params)
        assert again.status_code == 302
        code = parse_qs(urlsplit(again.headers["location"]).query)["code"][0]
        ok = client.post(token_url, data={**base, "code": code, "code_verifier": verifier})
        assert ok.status_code == 200, ok.text
        tokens = ok.json()
        key = _jwks_key(m365, client, tokens["id_token"])
        claims = jwt.decode(
            tokens["id_token"],
            key.key,
            algorithms=["RS256"],
            audience=m365.client_id,
            issuer=f"{m365.base_url}/{m365.tenant_id}/v2.0",
        )
        assert claims["nonce"] == "n0nce" and claims["tid"] == m365.tenant_id
        assert claims["preferred_username"] == "kenneth.lay@enron.com"
        me = client.get(
            f"{m365.graph_url}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.json()["id"] == claims["oid"]
        assert (
            client.get(
                f"{m365.graph_url}/users",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            ).status_code
            == 403
        )
        refreshed = client.post(
            token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": m365.client_id,
                "client_secret": m365.client_secret,
                "refresh_token": tokens["refresh_token"],
            },
        )
        assert (
            refreshed.status_code == 200
            and refreshed.json()["refresh_token"] != tokens["refresh_token"]
        )


def test_disabled_user_cannot_sign_in(m365: EmulatorHandle) -> None:
    _verifier, challenge = _pkce()
    params = {
        "client_id": m365.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "login",
    }
    with m365.http() as client:
        page = client.get(f"{m365.authority}/oauth2/v2.0/authorize", params=params)
        assert (
            "AADSTS50057"
            in _sign_in(client, page, "phillip.allen@enron.com", m365.user_password).text
        )


def test_unregistered_redirect_uri_is_refused(m365: EmulatorHandle) -> None:
    with m365.http() as client:
        page = client.get(
            f"{m365.authority}/oauth2/v2.0/authorize",
            params={
                "client_id": m365.client_id,
                "response_type": "code",
                "redirect_uri": "https://evil.example/cb",
            },
        )
        assert page.status_code == 400 and "AADSTS50011" in page.text


@pytest.mark.parametrize("decision", ["accept", "decline"])
def test_admin_consent_page_lists_permissions_and_can_be_declined(
    m365: EmulatorHandle, decision: str
) -> None:
    m365.set_consent(False)
    params = {
        "client_id": m365.client_id,
        "scope": GRAPH_SCOPE,
        "redirect_uri": REDIRECT,
        "state": "xyz",
    }
    with m365.http() as client:
        page = client.get(f"{m365.base_url}/organizations/v2.0/adminconsent", params=params)
        assert "Sign in" in page.text
        consent = _sign_in(client, page, m365.admin_upn, m365.user_password)
        assert consent.status_code == 200
        assert "Permissions requested" in consent.text and "Mail.ReadWrite" in consent.text
        assert (
            "Read all users&#x27; full profiles" in consent.text
            or "Read all users' full profiles" in consent.text
        )
        fields = dict(
            re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", consent.text)
        )
        answer = client.post(
            f"{m365.base_url}/organizations/v2.0/adminconsent",
            data={**fields, "decision": decision},
        )
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert answer.headers["location"].startswith(REDIRECT)
        assert query["state"] == ["xyz"] and query["admin_consent"] == ["True"]
        info = m365.control("GET", "info")
        if decision == "accept":
            assert query["tenant"] == [m365.tenant_id]
            assert info["consented"] is True
        else:
            assert (
                query["error"] == ["consent_required"]
                and "AADSTS65004" in query["error_description"][0]
            )
            assert info["consented"] is False


def test_admin_consent_by_a_non_admin_needs_admin_approval(m365: EmulatorHandle) -> None:
    params = {
        "client_id": m365.client_id,
        "scope": GRAPH_SCOPE,
        "redirect_uri": REDIRECT,
        "state": "s",
    }
    with m365.http() as client:
        page = client.get(f"{m365.authority}/v2.0/adminconsent", params=params)
        result = _sign_in(client, page, "mike.carson@enron.com", m365.user_password)
        assert "Need admin approval" in result.text
