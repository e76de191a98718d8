"""The listener's view of the journal endpoints: an in-memory map refreshed from the
database every few seconds, so that no SMTP command waits for the database."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass

from django.db import close_old_connections

from mailvault.sources.models import JournalEndpoint

log = logging.getLogger("mailvault.smtp")


@dataclass(frozen=True)
class EndpointInfo:
    id: int
    tenant_id: int
    local_part: str
    enabled: bool
    auth_username: str
    auth_password_hash: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def allows_peer(self, host: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
        return any(address.version == n.version and address in n for n in self.networks)


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for line in text.split():
        try:
            networks.append(ipaddress.ip_network(line, strict=False))
        except ValueError:
            log.warning("ignoring bad network %r in a journal endpoint", line)
    return tuple(networks)


class EndpointDirectory:
    def __init__(self, refresh_seconds: float = 3.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._by_local_part: dict[str, EndpointInfo] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        rows = JournalEndpoint.unscoped.values_list(
            "id",
            "tenant_id",
            "local_part",
            "enabled",
            "auth_username",
            "auth_password_hash",
            "allowed_networks",
        )
        self._by_local_part = {
            row[2].casefold(): EndpointInfo(*row[:6], networks=_networks(row[6]))  # type: ignore[misc]
            for row in rows
        }

    def get(self, local_part: str) -> EndpointInfo | None:
        return self._by_local_part.get(local_part.casefold())

    def by_auth_username(self, username: str) -> list[EndpointInfo]:
        return [e for e in self._by_local_part.values() if e.auth_username == username]

    def start(self) -> None:
        self.load()
        self._thread = threading.Thread(target=self._run, name="endpoint-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                close_old_connections()  # this thread's connection may have gone stale
                self.load()
            except Exception:  # keep the last good map; the database may be restarting
                log.exception("could not refresh the journal endpoints")
