"""A real Dovecot for the IMAP and POP3 tests: temp config, free ports, own TLS cert.

Started with ``dovecot -F -c <conf>`` in a subprocess; users live in a passwd-file that
Dovecot re-reads when it changes, so each test adds its own user. Mail is stored as
maildir under the temp directory, owned by ``nobody`` (Dovecot refuses uid 0).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
PASSWORD = "secret-pw"
MASTER = "archiver-master"
USERS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path, common_name: str = "localhost") -> str:
    """A self-signed certificate for 127.0.0.1 in ``directory`` (cert.pem, key.pem).
    Certificates trusted together need different ``common_name``s."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (directory / "cert.pem").write_text(pem)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "key.pem").write_bytes(key_pem)
    os.chmod(directory / "key.pem", 0o600)
    return pem


CONFIG = """
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
mail_max_userip_connections = 200
{extra}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/masters
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
  default_fields = uid=nobody gid=nogroup home={d}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
{extra_mailboxes}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


GMAIL_MAILBOXES = """
  mailbox "All Mail" {
    special_use = \\All
    auto = create
  }
"""


# XOAUTH2: tokens are checked at an introspection URL (the test's identity provider).
OAUTH2_PASSDB = """
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
"""


class Dovecot:
    """``gmail=True``: announces X-GM-EXT-1 and has an "All Mail" folder flagged \\All,
    like Gmail (label folders are the other folders). ``users``: extra user names (the
    password is ``PASSWORD``), e.g. addresses of a tenant's domain.
    ``oauth2_introspection``: also XOAUTH2, with tokens checked at this URL."""

    def __init__(
        self, *, gmail: bool = False, users: tuple[str, ...] = (), oauth2_introspection: str = ""
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mv-dovecot-"))
        os.chmod(self.dir, 0o755)
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir()
        for sub in ("mail", "home"):
            shutil.chown(self.dir / sub, "nobody", "nogroup")
        self.ca_pem = self_signed(self.dir)
        self.ports = {k: free_port() for k in ("imap", "imaps", "pop3", "pop3s")}
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(
            CONFIG.format(
                d=self.dir,
                extra=("imap_capability = +X-GM-EXT-1\n" if gmail else "")
                + (OAUTH2_PASSDB.format(d=self.dir) if oauth2_introspection else ""),
                extra_mailboxes=GMAIL_MAILBOXES if gmail else "",
                **self.ports,
            )
        )
        # Dovecot re-reads a changed passwd-file only when its mtime second changes: the
        # users are made up front, and each test takes fresh ones.
        self._users = [f"u{uuid.uuid4().hex[:10]}@mail.test" for _ in range(USERS)]
        (self.dir / "passwd").write_text(
            "".join(f"{user}:{{PLAIN}}{PASSWORD}::::::\n" for user in [*self._users, *users])
        )
        # A master user (``MASTER``/``PASSWORD``) opens any mailbox: SASL PLAIN with the
        # mailbox as authorization identity.
        (self.dir / "masters").write_text(f"{MASTER}:{{PLAIN}}{PASSWORD}::::::\n")
        if oauth2_introspection:
            (self.dir / "oauth2.conf.ext").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {oauth2_introspection}\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
            )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["imap"]), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def add_user(self) -> str:
        """A user nobody used yet (password ``PASSWORD``)."""
        return self._users.pop()

    def client(self, user: str, password: str = PASSWORD) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.ports["imap"], ssl=False, timeout=10)
        client.login(user, password)
        return client

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            [DOVEADM, "-c", str(self.conf), *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    def maildir(self, user: str) -> Path:
        return self.dir / "mail" / user

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem)
        return context


class DroppingProxy:
    """Forwards TCP to ``port`` and cuts the first connection after ``after_bytes``
    bytes from the server: a server that drops the connection mid-fetch."""

    def __init__(self, port: int, after_bytes: int) -> None:
        self.target = port
        self.after = after_bytes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.after if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, limit), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self.dropped += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self.sock.close()


class IdentityProvider:
    """A small OAuth 2.0 provider: the client credentials grant at
    ``https://…/token`` (the Dovecot test certificate) and RFC 7662 introspection at
    ``http://…/introspect`` for Dovecot. Issues one token, for ``username``."""

    def __init__(self, cert_dir: Path, *, client_id: str, client_secret: str, username: str):
        import json
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        provider = self
        self.token = f"tok-{uuid.uuid4().hex}"
        self.grants = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path == "/token":
                    ok = (
                        form.get("grant_type") == "client_credentials"
                        and form.get("client_id") == client_id
                        and form.get("client_secret") == client_secret
                    )
                    provider.grants += int(ok)
                    body = {"access_token": provider.token, "token_type": "Bearer"}
                    status = 200 if ok else 401
                    reply = body if ok else {"error": "invalid_client"}
                else:
                    active = form.get("token") == provider.token
                    status = 200
                    reply = {"active": "true", "username": username} if active else {}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.https = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for server in (self.https, self.http):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.token_url = f"https://127.0.0.1:{self.https.server_address[1]}/token"
        self.introspection_url = f"http://127.0.0.1:{self.http.server_address[1]}/introspect"

    def close(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()
