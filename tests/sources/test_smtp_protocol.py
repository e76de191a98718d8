"""The journaling listener's own SMTP server (protocol.py) on the wire: pipelining
(RFC 2920), the end-of-data line split over reads, STARTTLS and AUTH dialogues, limits
and the replies of the commands nobody sends in the other tests. Raw sockets, so that
what is checked is the bytes a client sees."""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import ssl
import time
from collections.abc import Callable

from mailvault.sources.smtp.protocol import SMTPProtocol, SMTPServer
from mailvault.sources.smtp.session import Envelope, ServerConfig, Session
from mailvault.sources.smtp.spool import read_segment

from . import test_smtp_listener as listener_tests
from .test_smtp_listener import Listener

world = listener_tests.world
listener = listener_tests.listener


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """The next ``count`` complete replies (a multi-line reply counts once)."""
    data = b""
    replies: list[bytes] = []
    while len(replies) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        while b"\r\n" in data and len(replies) < count:
            line, data = data.split(b"\r\n", 1)
            if line[3:4] != b"-":
                replies.append(line)
    assert not data, f"more than {count} replies: {data!r}"
    return replies


def _session(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert _read_replies(sock, 1)[0].startswith(b"220 ")
    return sock


def _ehlo(sock: socket.socket, name: bytes) -> bytes:
    """The whole EHLO reply, every line."""
    sock.sendall(b"EHLO " + name + b"\r\n")
    reply = b""
    while not reply.endswith(b"250 HELP\r\n"):
        chunk = sock.recv(4096)
        assert chunk, reply
        reply += chunk
    return reply


def _spooled(listener: Listener) -> list[bytes]:
    listener.spool.roll_if_due(force=True)
    return [r.body for path in listener.spool.ready_segments() for r in read_segment(path)]


def test_pipelined_commands_are_answered_in_order(world, listener):
    endpoint = world["endpoint"].smtp_address
    sock = _session(listener.port)
    ehlo = _ehlo(sock, b"pipe.test")
    assert b"250-PIPELINING\r\n" in ehlo and b"250-SIZE 200000\r\n" in ehlo
    first = b"Subject: one\r\n\r\n.leading dot\r\n"
    second = b"Subject: two\r\n\r\nbody\r\n"
    sock.sendall(
        b"MAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<nobody@journal.test>\r\n"
        + f"RCPT TO:<{endpoint}>\r\n".encode()
        + b"DATA\r\n"
    )
    replies = _read_replies(sock, 4)
    assert [r[:3] for r in replies] == [b"250", b"550", b"250", b"354"]
    # The end of one message and the next transaction in one write; the second
    # message's end-of-data line then arrives over three writes.
    sock.sendall(
        first.replace(b"\r\n.", b"\r\n..")
        + b".\r\nMAIL FROM:<c@d.test>\r\n"
        + f"RCPT TO:<{endpoint}>\r\nDATA\r\n".encode()
    )
    replies = _read_replies(sock, 4)
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354"]
    assert replies[0] == b"250 2.0.0 OK: archived"
    for piece in (second[:-1], b"\n.", b"\r\n"):
        sock.sendall(piece)
        time.sleep(0.05)
    assert _read_replies(sock, 1) == [b"250 2.0.0 OK: archived"]
    sock.sendall(b"QUIT\r\n")
    assert _read_replies(sock, 1) == [b"221 Bye"]
    assert sock.recv(10) == b""
    sock.close()
    assert _spooled(listener) == [first, second]


def test_an_empty_message_and_one_over_the_size_limit_without_size(world, listener):
    endpoint = world["endpoint"].smtp_address
    sock = _session(listener.port)
    sock.sendall(b"HELO old.test\r\n")
    assert _read_replies(sock, 1)[0].startswith(b"250 ")
    envelope = f"MAIL FROM:<a@b.test>\r\nRCPT TO:<{endpoint}>\r\nDATA\r\n".encode()
    sock.sendall(envelope)
    assert [r[:3] for r in _read_replies(sock, 3)] == [b"250", b"250", b"354"]
    sock.sendall(b".\r\n")
    assert _read_replies(sock, 1) == [b"250 2.0.0 OK: archived"]
    sock.sendall(envelope)
    assert [r[:3] for r in _read_replies(sock, 3)] == [b"250", b"250", b"354"]
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 250
    sock.sendall(big + b".\r\n")  # the end alone, then again with a command behind it
    assert _read_replies(sock, 1) == [b"552 Error: Too much mail data"]
    sock.sendall(envelope)
    assert [r[:3] for r in _read_replies(sock, 3)] == [b"250", b"250", b"354"]
    sock.sendall(big + b".\r\nNOOP\r\n")
    assert _read_replies(sock, 2) == [b"552 Error: Too much mail data", b"250 OK"]
    sock.close()
    assert _spooled(listener) == [b""]


def test_command_replies_limits_and_the_bogus_command_budget(world, listener):
    sock = _session(listener.port)
    sock.sendall(b"MAIL FROM:<a@b.test>\r\nNOOP\r\nRSET\r\nVRFY <x@y.test>\r\nVRFY\r\nEXPN x\r\n")
    assert _read_replies(sock, 6) == [
        b"503 Error: send HELO first",
        b"250 OK",
        b"250 OK",
        b"252 Cannot VRFY user, but will accept message and attempt delivery",
        b"501 Syntax: VRFY <address>",
        b"502 EXPN not implemented",
    ]
    _ehlo(sock, b"x.test")
    sock.sendall(b"HELP\r\nHELP mail\r\nRCPT TO:<a@b.test>\r\nDATA\r\nMAIL FROM:<>\r\n")
    help_all, help_mail, rcpt, data, null_sender = _read_replies(sock, 5)
    assert help_all.startswith(b"250 Supported commands: AUTH DATA EHLO HELO HELP MAIL")
    assert b"STARTTLS" in help_all
    assert help_mail == b"250 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
    assert rcpt == b"503 Error: need MAIL command" and data == b"503 Error: need RCPT command"
    assert null_sender == b"250 OK"  # bounces come from the null path
    sock.sendall(b"NOOP " + b"x" * 600 + b"\r\n" + b"NOOP " + b"y" * 5000 + b"\r\nNOOP\r\n")
    assert _read_replies(sock, 3) == [
        b"500 Command line too long",
        b"500 Command line too long",
        b"250 OK",
    ]
    sock.sendall(b"RSET\r\nMAIL FROM:<a@b.test> SIZE=300000\r\nAUTH PLAIN\r\n")
    assert _read_replies(sock, 3) == [
        b"250 OK",
        b"552 Error: message size exceeds fixed maximum message size",
        b"538 5.7.11 Encryption required for requested authentication mechanism",
    ]
    sock.sendall(b"FOO\r\n" * 5)
    replies = _read_replies(sock, 5)
    assert replies[0] == b'500 Error: command "FOO" not recognized'
    assert replies[-1] == b"502 5.5.1 Too many unrecognized commands, goodbye."
    assert sock.recv(10) == b""
    sock.close()


def _tls(sock: socket.socket) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname="journal.test")


def test_starttls_drops_plaintext_sent_with_it_and_auth_dialogues(world, listener):
    secured = world["secured"].smtp_address
    sock = _session(listener.port)
    assert b"250-STARTTLS\r\n" in _ehlo(sock, b"tls.test")
    # A command injected behind STARTTLS must not be executed (RFC 3207 §4).
    sock.sendall(b"STARTTLS\r\nNOOP\r\n")
    assert _read_replies(sock, 1) == [b"220 Ready to start TLS"]
    tls = _tls(sock)
    ehlo = _ehlo(tls, b"tls.test")
    assert ehlo.startswith(b"250-journal.test\r\n"), ehlo  # no reply to the NOOP
    assert b"250-AUTH LOGIN PLAIN\r\n" in ehlo and b"STARTTLS" not in ehlo
    # PLAIN answered after an empty challenge; "*" aborts; bad base64 is refused.
    tls.sendall(b"AUTH PLAIN\r\n*\r\nAUTH LOGIN !!!\r\nAUTH PLAIN\r\n")
    assert _read_replies(tls, 4) == [
        b"334 ",
        b"501 5.7.0 Auth aborted",
        b"501 5.5.2 Can't decode base64",
        b"334 ",
    ]
    tls.sendall(base64.b64encode(b"\x00m365\x00wrong") + b"\r\n")
    assert _read_replies(tls, 1) == [b"535 5.7.8 Authentication credentials invalid"]
    # LOGIN with the user name in the command, then the password challenge.
    tls.sendall(b"AUTH LOGIN " + base64.b64encode(b"m365") + b"\r\n")
    assert _read_replies(tls, 1) == [b"334 UGFzc3dvcmQA"]
    tls.sendall(base64.b64encode(b"s3cret-Pass!") + b"\r\n")
    assert _read_replies(tls, 1) == [b"235 2.7.0 Authentication successful"]
    tls.sendall(b"AUTH PLAIN\r\n")
    assert _read_replies(tls, 1) == [b"503 Already authenticated"]
    tls.sendall(f"MAIL FROM:<a@b.test>\r\nRCPT TO:<{secured}>\r\nDATA\r\n".encode())
    assert [r[:3] for r in _read_replies(tls, 3)] == [b"250", b"250", b"354"]
    tls.sendall(b"Subject: secured\r\n\r\nok\r\n.\r\nQUIT\r\n")
    assert _read_replies(tls, 2) == [b"250 2.0.0 OK: archived", b"221 Bye"]
    tls.close()
    assert _spooled(listener) == [b"Subject: secured\r\n\r\nok\r\n"]


class _Wire(asyncio.Transport):
    """A transport that keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 25) if name == "peername" else default


class _Recorder:
    """A handler that keeps what it is given and accepts at once."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def rcpt(self, session: Session, envelope: Envelope, address: str) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def data(
        self, session: Session, envelope: Envelope, body: bytes, reply: Callable[[str], None]
    ) -> None:
        self.bodies.append(body)
        reply("250 stored")


def test_the_end_of_data_is_found_however_the_stream_is_cut() -> None:
    """Against the definition (RFC 5321 §4.1.1.4, §4.5.2): the first CRLF.CRLF ends the
    message, a leading period of a line is removed; every way of cutting the stream into
    reads gives the same message and the same command after it."""
    rng = random.Random(5321)
    # Periods in and at the start of lines; one line dense with them (over 64).
    lines = [b"", b".", b"..", b".x", b"x.", b"abc", b".\r", b"\r", b"x" * 70, b"a." * 70]
    for _ in range(600):
        stuffed = b"".join(rng.choice(lines) + b"\r\n" for _ in range(rng.randint(0, 8)))
        stuffed = b"".join(
            (b"." + line if line.startswith(b".") else line) + b"\r\n"
            for line in stuffed.split(b"\r\n")[:-1]
        )
        stream = stuffed + b".\r\nNOOP\r\n"
        expected = stuffed.replace(b"\r\n.", b"\r\n")
        expected = expected[1:] if expected.startswith(b".") else expected
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 6))))
        recorder = _Recorder()
        protocol = SMTPProtocol(SMTPServer(recorder, ServerConfig(hostname="t.test")))
        wire = _Wire()
        protocol.connection_made(wire)
        protocol.data_received(b"HELO t\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            protocol.data_received(stream[start:end])
        assert recorder.bodies == [expected], (stream, cuts)
        assert wire.written.endswith(
            b"354 End data with <CR><LF>.<CR><LF>\r\n250 stored\r\n250 OK\r\n"
        )
        assert not protocol.in_data and not protocol.buffer
