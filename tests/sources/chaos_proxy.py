"""A TCP proxy that breaks connections on purpose, for the IMAP and POP3 chaos tests.

It sits between a mail client (the archiving job) and the real Dovecot on the plain-text
port, so it sees the commands the client sends. Faults:

- ``Fault.cut(after_bytes=n)``: the connection is cut once ``n`` bytes came back from
  the server (mid-response: in the middle of a FETCH or RETR literal);
- ``Fault.on(b"UID STORE", reply=False)``: cut when the client sends a line containing
  the pattern — before it reaches the server (``reply=False`` still forwards nothing), or
  with ``executed=True`` after the server ran it, dropping its answer (the client
  cannot tell whether it happened).

``random_faults(seed, …)`` picks one per connection from a seeded generator, so a
failing run can be repeated. ``hooks`` run a callback (in the proxy thread, before the
command is forwarded) when a line with the pattern passes: a UIDVALIDITY change or a
SIGKILL of the worker at an exact point of the conversation.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    after_bytes: int | None = None  # cut after this many bytes from the server
    pattern: bytes = b""  # or: cut at the first client line containing it
    executed: bool = False  # … after the server answered it (the answer is lost)

    @staticmethod
    def cut(after_bytes: int) -> Fault:
        return Fault(after_bytes=after_bytes)

    @staticmethod
    def on(pattern: bytes, *, executed: bool = False) -> Fault:
        return Fault(pattern=pattern, executed=executed)

    def describe(self) -> str:
        if self.after_bytes is not None:
            return f"cut after {self.after_bytes} bytes"
        return f"cut at {self.pattern.decode()} ({'after' if self.executed else 'before'} it ran)"


@dataclass
class Hook:
    pattern: bytes
    action: Callable[[bytes], None]
    times: int = 1  # how many matching lines fire it


@dataclass
class _Conn:
    number: int
    client: socket.socket
    upstream: socket.socket
    fault: Fault | None
    swallow: bool = False  # the next server answer is dropped, then the connection
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChaosProxy:
    """Forwards 127.0.0.1:``port`` (Dovecot) at ``self.port``; ``plan`` gives the fault of
    each new connection (numbered from 1), or None for a healthy one."""

    def __init__(self, target_port: int, plan: Callable[[int], Fault | None] | None = None):
        self.target = target_port
        self.plan = plan or (lambda number: None)
        self.hooks: list[Hook] = []
        self.events: list[str] = []  # what was done, for assertion messages
        self.connections = 0
        self.drops = 0
        self.commands: list[bytes] = []  # every client line (the first 60 bytes)
        self.enabled = True
        self._lock = threading.Lock()
        self._open: list[_Conn] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def hook(self, pattern: bytes, action: Callable[[bytes], None], times: int = 1) -> None:
        self.hooks.append(Hook(pattern, action, times))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                fault = self.plan(self.connections) if self.enabled else None
                conn = _Conn(self.connections, client, upstream, fault)
                self._open.append(conn)
            if fault is not None:
                self.events.append(f"connection {conn.number}: {fault.describe()}")
            threading.Thread(target=self._client_to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(conn,), daemon=True).start()

    def _drop(self, conn: _Conn, why: str) -> None:
        with conn.lock:
            if conn.closed:
                return
            conn.closed = True
        self.drops += 1
        self.events.append(f"connection {conn.number}: dropped {why}")
        self._close(conn)

    @staticmethod
    def _close(conn: _Conn) -> None:
        for s in (conn.client, conn.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _fire_hooks(self, line: bytes) -> None:
        for hook in self.hooks:
            if hook.times > 0 and hook.pattern in line:
                hook.times -= 1
                self.events.append(f"hook at {line[:60]!r}")
                hook.action(line)

    def _client_to_server(self, conn: _Conn) -> None:
        pending = b""
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                pending += data
                out = b""
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    line += b"\n"
                    self.commands.append(line[:60])
                    self._fire_hooks(line)
                    fault = conn.fault
                    if fault is not None and fault.pattern and fault.pattern in line:
                        conn.fault = None
                        if not fault.executed:
                            conn.upstream.sendall(out)
                            self._drop(conn, f"before {line[:40]!r}")
                            return
                        conn.swallow = True
                    out += line
                # A partial line (an APPEND literal, say) is passed on as it comes.
                conn.upstream.sendall(out + pending)
                pending = b""
        except OSError:
            pass
        self._end(conn)

    def _server_to_client(self, conn: _Conn) -> None:
        sent = 0
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                if conn.swallow:
                    self._drop(conn, "after the server ran the command (answer lost)")
                    return
                fault = conn.fault
                limit = fault.after_bytes if fault is not None else None
                if limit is not None and sent + len(data) > limit:
                    conn.client.sendall(data[: max(0, limit - sent)])
                    self._drop(conn, f"after {limit} bytes from the server")
                    return
                conn.client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._end(conn)

    def _end(self, conn: _Conn) -> None:
        with conn.lock:
            if conn.closed:
                return
            conn.closed = True
        self._close(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._lock:
            for conn in self._open:
                self._end(conn)


def random_faults(
    seed: int,
    *,
    probability: float,
    byte_range: tuple[int, int],
    patterns: tuple[bytes, ...],
    limit: int,
) -> Callable[[int], Fault | None]:
    """A plan: each connection gets a fault with ``probability`` (at most ``limit`` in
    all), half of them mid-response at a random byte, half at one of ``patterns`` (before
    or after the server ran it)."""
    rng = random.Random(seed)
    given = 0

    def plan(number: int) -> Fault | None:
        nonlocal given
        if given >= limit or rng.random() >= probability:
            return None
        given += 1
        if rng.random() < 0.5 or not patterns:
            return Fault.cut(rng.randint(*byte_range))
        return Fault.on(rng.choice(patterns), executed=rng.random() < 0.5)

    return plan
