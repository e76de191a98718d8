"""Starting the emulator from tests, and a handle to drive it.

    from m365_emulator.testing import running_emulator
    with running_emulator() as m365:
        token = m365.app_token()
        m365.graph("GET", "/users").json()
        m365.set_faults(throttle_next=1)

In-process by default (uvicorn in a thread on a pre-bound free port: fast start, and
``handle.emulator`` gives direct access to the state); ``subprocess=True`` runs the real
``m365-emulator`` command instead. pytest fixtures: :mod:`m365_emulator.pytest_plugin`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess as sp
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from m365_emulator.app import create_app
from m365_emulator.core import Emulator
from m365_emulator.fixture import FixtureOptions
from m365_emulator.tls import ensure_tls

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class EmulatorHandle:
    base_url: str  # the AUTHORITY_BASE, e.g. https://localhost:51234
    ca_path: Path
    tenant_id: str
    client_id: str
    client_secret: str
    admin_upn: str
    user_password: str
    state_dir: Path
    emulator: Emulator | None = None  # in-process only
    _token: tuple[str, float] | None = field(default=None, repr=False)

    @property
    def graph_url(self) -> str:
        """The GRAPH_BASE plus ``/v1.0``."""
        return f"{self.base_url}/v1.0"

    @property
    def graph_base(self) -> str:
        return self.base_url

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the emulator's CA (for httpx ``verify=``; MSAL takes ``str(ca_path)``)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(), timeout=30, **kwargs)

    def control(self, method: str, path: str, json: Any = None) -> Any:
        with self.http() as client:
            response = client.request(
                method, f"{self.base_url}/_emulator/api/{path.lstrip('/')}", json=json
            )
        response.raise_for_status()
        return response.json() if response.content else None

    # --- switches ------------------------------------------------------------------------
    def set_faults(self, **switches: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.control("POST", "faults", switches)
        return result

    def reset_faults(self) -> None:
        self.control("DELETE", "faults")

    def reset_state(self) -> None:
        """Rebuild the tenant from its fixture (undoes directory and mailbox changes)."""
        self.control("POST", "reset")

    def reset_delta(self) -> None:
        self.control("POST", "reset-delta")

    def expire_tokens(self) -> None:
        self.control("POST", "expire-tokens")
        self._token = None

    def set_consent(self, granted: bool) -> None:
        self.control("POST", "consent", {"granted": granted})
        self._token = None

    def deletions(self) -> list[dict[str, Any]]:
        """Every message a Graph client deleted (user_id, immutable_id, folder, sha256, at)."""
        found: list[dict[str, Any]] = self.control("GET", "deletions")["deletions"]
        return found

    def send(self, sender: str, to: list[str], subject: str, body: str = "", **extra: Any) -> Any:
        return self.control(
            "POST", "send", {"from": sender, "to": to, "subject": subject, "body": body, **extra}
        )

    def set_journal_smarthost(self, host: str, port: int) -> None:
        """Send journal reports (of rules without their own smarthost) to host:port."""
        self.control("POST", "journal-smarthost", {"smarthost": f"{host}:{port}"})

    def add_journal_rule(self, name: str, journal_address: str, **extra: Any) -> Any:
        return self.control(
            "POST", "journal-rules", {"name": name, "journal_address": journal_address, **extra}
        )

    # --- tokens and Graph ------------------------------------------------------------------
    def app_token(self) -> str:
        if self._token and self._token[1] > time.time() + 60:
            return self._token[0]
        with self.http() as client:
            response = client.post(
                f"{self.authority}/oauth2/v2.0/token",
                data={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "scope": GRAPH_SCOPE,
                    "grant_type": "client_credentials",
                },
            )
        response.raise_for_status()
        data = response.json()
        self._token = (data["access_token"], time.time() + data["expires_in"])
        return str(data["access_token"])

    def graph(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A Graph request with an app token; ``path`` below /v1.0 or an absolute link."""
        url = path if path.startswith("https://") else f"{self.graph_url}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.app_token()}", **kwargs.pop("headers", {})}
        with self.http() as client:
            return client.request(method, url, headers=headers, **kwargs)


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def _wait(
    url: str, ca: Path, deadline: float, proc: sp.Popen[bytes] | None = None
) -> dict[str, Any]:
    while True:
        try:
            response = httpx.get(url, verify=ssl.create_default_context(cafile=str(ca)), timeout=2)
            if response.status_code == 200:
                data: dict[str, Any] = response.json()
                return data
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"m365-emulator exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"m365-emulator did not answer at {url}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_emulator(
    *,
    state_dir: Path | None = None,
    fixture: str = "corpus",
    users: int = 40,
    groups: int = 10,
    max_per_folder: int | None = 25,
    seed: str = "mailvault",
    consented: bool = True,
    journal_smarthost: str = "127.0.0.1:2525",
    ndr_to: str = "",
    subprocess: bool = False,
) -> Iterator[EmulatorHandle]:
    """Start an emulator on a free port with its own state dir; stop it afterwards."""
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="m365-emu-")))
        tls = ensure_tls(state_dir / "tls")
        options = FixtureOptions(
            kind=fixture,
            seed=seed,
            users=users,
            groups=groups,
            max_per_folder=max_per_folder,
            consented=consented,
        )
        emulator: Emulator | None = None
        if subprocess:
            probe = _free_socket("127.0.0.1")
            port = probe.getsockname()[1]
            probe.close()
            argv = [
                sys.executable,
                "-m",
                "m365_emulator",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                "--fixture",
                fixture,
                "--users",
                str(users),
                "--groups",
                str(groups),
                "--seed",
                seed,
                "--journal-smarthost",
                journal_smarthost,
            ]
            argv += ["--consented"] if consented else []
            argv += ["--max-per-folder", str(max_per_folder)] if max_per_folder else []
            argv += ["--ndr-to", ndr_to] if ndr_to else []
            proc = sp.Popen(argv, env={**os.environ})  # noqa: S603 - our own command
            stack.callback(_stop, proc)
            base = f"https://localhost:{port}"
            info = _wait(f"{base}/_emulator/api/info", tls.ca_cert, time.monotonic() + 60, proc)
        else:
            emulator = Emulator(state_dir, options)
            app = create_app(emulator, journal_smarthost, ndr_to)
            sock = _free_socket("127.0.0.1")
            port = sock.getsockname()[1]
            config = uvicorn.Config(
                app,
                ssl_certfile=str(tls.server_cert),
                ssl_keyfile=str(tls.server_key),
                log_level="error",
                timeout_graceful_shutdown=1,
                lifespan="off",
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="m365-emulator"
            )
            thread.start()
            stack.callback(_stop_thread, server, thread, sock)
            base = f"https://localhost:{port}"
            info = _wait(f"{base}/_emulator/api/info", tls.ca_cert, time.monotonic() + 30)
        yield EmulatorHandle(
            base_url=base,
            ca_path=tls.ca_cert,
            tenant_id=info["tenant_id"],
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            admin_upn=info["admin_upn"],
            user_password=info["user_password"],
            state_dir=state_dir,
            emulator=emulator,
        )


def _stop(proc: sp.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except sp.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_thread(server: uvicorn.Server, thread: threading.Thread, sock: socket.socket) -> None:
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
