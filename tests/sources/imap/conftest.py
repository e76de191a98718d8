"""A real Dovecot (one per session) for the IMAP tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from sources.dovecot_server import PASSWORD, Dovecot
from sources.profile_helpers import Account, world  # noqa: F401 - the three tenants


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def account(dovecot: Dovecot) -> Iterator[Account]:
    user = dovecot.add_user()
    client = dovecot.client(user)
    yield Account(dovecot, user, PASSWORD, client)
    with contextlib.suppress(Exception):
        client.logout()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect after 10 ms instead of 1 s (the backoff doubling stays); no worker pool."""
    monkeypatch.setattr("mailvault.sources.profiles.job.RETRY_BACKOFF_S", 0.01)
    # A handful of messages per test: parsing in this process beats starting a pool.
    monkeypatch.setattr("mailvault.sources.profiles.job.INGEST_WORKERS", 0)
