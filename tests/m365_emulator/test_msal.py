"""MSAL for Python against the emulator, configured as m365-protocol.md §2 says."""

from __future__ import annotations

import datetime
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365_emulator.testing import GRAPH_SCOPE, EmulatorHandle


def _app(m365: EmulatorHandle) -> msal.ConfidentialClientApplication:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=
    session.verify = str(m365.ca_path)
    return msal.ConfidentialClientApplication(
        m365.client_id,
        client_credential=m365.client_secret,
        authority=m365.authority,
        instance_discovery=False,
        http_client=session,
    )


def test_msal_client_credentials(m365: EmulatorHandle) -> None:
    result = _app(m365).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    with m365.http() as client:
        users = client.get(
            f"{m365.graph_url}/users?$top=1",
            headers={"Authorization": f"Bearer {result['access_token']}"},
        )
    assert users.status_code == 200


@pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")
def test_msal_auth_code_flow_with_pkce_nonce_and_state(m365: EmulatorHandle) -> None:
    app = _app(m365)
    redirect = "http://localhost:8000/webaccess/login/entra/callback"
    flow = app.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=redirect, login_hint="bill.rapp@enron.com"
    )
    with m365.http() as client:
        page = client.get(flow["auth_uri"])
        action = re.search(r"<form method='post' action='([^']+)'", page.text)
        assert action is not None
        fields = dict(
            re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", page.text)
        )
        fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
        done = client.post(
            urljoin(str(page.url), action.group(1)),
            data={
                **fields,
                "login": "bill.rapp@enron.com",
                "passwd": m365.user_password,
                "step": "signin",
            },
        )
    answer = {k: v[0] for k, v in parse_qs(urlsplit(done.headers["location"]).query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result
    claims = result["id_token_claims"]
    assert claims["preferred_username"] == "bill.rapp@enron.com" and claims["tid"] == m365.tenant_id


def _certificate() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailvault app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key


def test_msal_certificate_credential_private_key_jwt(m365: EmulatorHandle) -> None:
    cert_pem, key_pem = _certificate()
    registered = m365.control("POST", "certificates", {"pem": cert_pem})
    session = requests.Session()
    session.trust_env = False
    session.verify = str(m365.ca_path)
    app = msal.ConfidentialClientApplication(
        m365.client_id,
        authority=m365.authority,
        instance_discovery=False,
        http_client=session,
        client_credential={"private_key": key_pem, "thumbprint": registered["thumbprint"]},
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    _other_cert, other_key = _certificate()
    stranger = msal.ConfidentialClientApplication(
        m365.client_id,
        authority=m365.authority,
        instance_discovery=False,
        http_client=session,
        client_credential={"private_key": other_key, "thumbprint": registered["thumbprint"]},
    )
    refused = stranger.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert refused.get("error") == "invalid_client" and 700027 in refused["error_codes"]
