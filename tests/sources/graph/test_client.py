"""The Graph connector against the Microsoft 365 emulator over real HTTPS: tokens through
MSAL, paging, delta links, Retry-After, backoff, dropped connections, token renewal, 410,
the per-mailbox concurrency limit, and the token errors an admin must understand."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365_emulator.testing import EmulatorHandle
from mailvault.sources.graph import (
    GraphClient,
    GraphError,
    GraphSettings,
    ResyncRequired,
    TokenError,
    retry_after_seconds,
)


def client(m365: EmulatorHandle, **kwargs: object) -> GraphClient:
    return GraphClient(m365.tenant_id, GraphSettings.from_django(), **kwargs)  # type: ignore[arg-type]


def test_retry_after_values() -> None:
    assert retry_after_seconds("2.128") == pytest.approx(2.128)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    assert 0 <= (retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") or 0) == 0


def test_paging_follows_next_links(m365: EmulatorHandle) -> None:
    with client(m365) as graph:
        pages = list(graph.pages("/users", params={"$top": 7, "$select": "id"}))
        ids = [u["id"] for page in pages for u in page["value"]]
        assert len(pages) > 1
        assert len(ids) == len(set(ids)) >= 16
        with pytest.raises(GraphError) as bad:
            graph.get("/users", params={"$top": 1000})
        assert bad.value.status == 400


def test_delta_link_then_changes_only(m365: EmulatorHandle) -> None:
    with client(m365) as graph:
        items, link = graph.delta("/users/delta", params={"$select": "id,displayName"})
        assert len(items) >= 16 and "deltatoken" in link.lower()
        first = items[0]["id"]
        m365.control("PATCH", f"users/{first}", {"displayName": "Renamed Person"})
        changes, link2 = graph.delta(link)
        assert [c["id"] for c in changes] == [first]
        assert changes[0]["displayName"] == "Renamed Person"
        assert link2 != link


def test_410_raises_resync_with_fresh_query(m365: EmulatorHandle) -> None:
    with client(m365) as graph:
        _, link = graph.delta("/users/delta", params={"$select": "id"})
        m365.set_faults(delta_reset=True)
        with pytest.raises(ResyncRequired) as gone:
            graph.delta(link)
        assert gone.value.status == 410


def test_throttling_unavailable_and_dropped_connections_are_retried(
    m365: EmulatorHandle,
) -> None:
    sleeps: list[float] = []
    with client(m365, sleep=lambda s: (sleeps.append(s), time.sleep(s))) as graph:
        m365.set_faults(throttle_next=2, retry_after="0.25")
        assert graph.get("/domains")["value"]
        assert sleeps[:2] == [0.25, 0.25]  # the fractional Retry-After, honoured exactly
        assert graph.stats.throttled == 2
        m365.set_faults(unavailable_next=1, retry_after="")
        assert graph.get("/domains")["value"]  # no Retry-After: exponential backoff
        m365.set_faults(drop_next=2)
        assert graph.get("/domains")["value"]
        assert graph.stats.retries >= 5


def test_a_429_storm_ends_in_a_clear_error(m365: EmulatorHandle) -> None:
    m365.set_faults(throttle_next=50, retry_after="0.005")
    with client(m365) as graph, pytest.raises(GraphError, match="kept answering 429"):
        graph.get("/domains")


def test_expired_token_is_renewed(m365: EmulatorHandle) -> None:
    with client(m365) as graph:
        graph.get("/domains")
        m365.expire_tokens()  # every token issued up to a second from now is expired
        time.sleep(1.1)
        assert graph.get("/domains")["value"]
        assert graph.stats.requests == 3  # the 401, then the retry with a new token


def test_mailbox_concurrency_never_exceeds_four(m365: EmulatorHandle) -> None:
    m365.set_faults(slow_ms=150, retry_after="5")
    with client(m365) as graph:
        uid = next(graph.items("/users", params={"$select": "id"}))["id"]
        errors: list[Exception] = []

        def one() -> None:
            try:
                graph.request("GET", f"/users/{uid}/mailboxSettings", mailbox=uid)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The emulator answers a fifth concurrent request with 429 MailboxConcurrency.
        assert not errors
        assert graph.stats.throttled == 0


def test_revoked_consent_and_bad_secret_say_what_to_do(m365: EmulatorHandle) -> None:
    m365.set_consent(False)
    with client(m365) as graph, pytest.raises(TokenError) as revoked:
        graph.get("/domains")
    assert revoked.value.aadsts == 700016
    assert "consent" in str(revoked.value)
    m365.set_consent(True)
    config = GraphSettings.from_django()
    config.client_secret = "wrong"
    with GraphClient(m365.tenant_id, config) as graph, pytest.raises(TokenError) as wrong:
        graph.get("/domains")
    assert wrong.value.aadsts == 7000215
    m365.set_faults(secret_expired=True)
    with client(m365) as graph, pytest.raises(TokenError) as expired:
        graph.get("/domains")
    assert expired.value.aadsts == 7000222
    assert "expired" in str(expired.value)


def test_certificate_instead_of_secret(m365: EmulatorHandle, tmp_path: Path) -> None:
    """private_key_jwt: the certificate uploaded to the app registration, the key here."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailvault app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        cert_pem
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = GraphSettings.from_django()
    config.client_secret = ""
    config.certificate_path = str(pem)
    with GraphClient(m365.tenant_id, config) as graph, pytest.raises(TokenError):
        graph.get("/domains")  # not uploaded yet: refused
    m365.control("POST", "certificates", {"pem": cert_pem.decode()})
    with GraphClient(m365.tenant_id, config) as graph:
        assert graph.get("/domains")["value"]
    config.certificate_path = str(tmp_path / "missing.pem")
    with pytest.raises(TokenError, match="cannot be read"):
        GraphClient(m365.tenant_id, config)
