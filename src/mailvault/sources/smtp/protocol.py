"""A lean ESMTP server for journal reports on :class:`asyncio.Protocol`.

One protocol object per connection, input parsed in ``data_received`` from one buffer
(several pipelined commands at once, RFC 2920), replies gathered and written with one
``write`` per read, the DATA phase appended chunk by chunk and searched for
``CRLF . CRLF`` without a line-by-line pass, idle timeouts checked by one sweep per
server instead of a timer per connection. Only what the journaling listener offers:
EHLO/HELO, STARTTLS (``loop.start_tls``), AUTH PLAIN/LOGIN, SIZE (``552`` while
reading), 8BITMIME, SMTPUTF8, PIPELINING, MAIL/RCPT/DATA/RSET/NOOP/QUIT/VRFY/HELP/EXPN.

Why not aiosmtpd (1.4.6, which served the listener before; its replies and limits are
kept): measured with ``bench/smtp_listener.py --messages 10000`` (``smtp-source -s 20
-l 102400``, one message per connection, 2 listener processes), old and new alternately
in the same minutes, 4 runs each, on 2 cores that other work loaded (load 4-10): the
listener's CPU time per message fell from 757-1,013 us to 354-437 us, throughput rose
from 583-1,035 to 1,214-1,804 msg/s, the ratio to ``smtp-sink`` in the same run from
0.37-0.76 to 0.70-1.04 (one listener process: 754 -> 1,253 msg/s, 634 -> 296 us).
py-spy under ``smtp-source`` showed where aiosmtpd's time went: per
connection a new ``SMTP`` object with ``StreamReader``/``StreamWriter``, a task and
its command tables (8 % of the event loop), a ``drain()`` awaited per reply, the socket
paused and resumed in epoll as the reader's buffer filled (6 %), several awaits per
command; and scanning DATA twice (the end-of-data search, then un-stuffing). Here the
end-of-data line and dot-stuffed lines are found in one pass that hops from period to
period (``scan_data``): 70 us per 100 KB of real mail (the corpus' larger messages)
against 196 us for search plus un-stuffing, 2 us for ``smtp-source``'s period-free text.

The handler (:class:`~mailvault.sources.smtp.listener.JournalHandler`) decides each
recipient synchronously and is called back when the spool's group commit made a message
durable; the ``250`` goes out only then.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable

from mailvault.sources.smtp.commands import (
    TERMINATOR,
    help_text,
    parse_params,
    parse_path,
    scan_data,
    strip_keyword,
    unstuff,
)
from mailvault.sources.smtp.session import Envelope, Handler, ServerConfig, Session

log = logging.getLogger("mailvault.smtp")

BOGUS_LIMIT = 5  # unrecognized commands before the server hangs up
COMMAND_LIMIT = 512  # RFC 5321 §4.5.3.1.4; MAIL gets room for SIZE= and SMTPUTF8
MAX_LINE = 1001  # longer input without a line end is dropped, then answered 500
PROGRESS_BYTES = 4 * 1024  # DATA progress that restarts the idle timeout
PAUSE_BYTES = 256 * 1024  # buffered input while busy above which reading pauses
ALLOWED_BEFORE_STARTTLS = frozenset({"NOOP", "EHLO", "STARTTLS", "QUIT"})


class SMTPServer:
    """The listening socket, its connections and their idle-timeout sweep."""

    def __init__(self, handler: Handler, config: ServerConfig) -> None:
        self.handler = handler
        self.config = config
        self.connections: set[SMTPProtocol] = set()
        self.greeting = f"220 {config.hostname} {config.ident}\r\n".encode()
        self.ehlo_plain = config.ehlo(tls=False)
        self.ehlo_tls = config.ehlo(tls=True)
        self.mail_limit = (
            COMMAND_LIMIT
            + (26 if config.data_size_limit else 0)
            + (10 if config.enable_SMTPUTF8 else 0)
        )
        # Replies carry the client's own bytes back (surrogate-escaped arguments).
        self.charset = "utf-8" if config.enable_SMTPUTF8 else "ascii"
        self.errors = "surrogateescape" if config.enable_SMTPUTF8 else "backslashreplace"
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        # SO_REUSEPORT: several listener processes share the port (acceptors.py).
        self._server = await loop.create_server(
            lambda: SMTPProtocol(self), host, port, reuse_port=True, backlog=1024
        )
        self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for connection in [c for c in self.connections if c.deadline < now]:
            log.info("%r connection timeout", connection.session.peer)
            connection.abort()
        interval = min(1.0, self.config.timeout / 4)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()


class SMTPProtocol(asyncio.Protocol):
    """One SMTP session. ``busy`` while the spool, a TLS handshake or a password check
    is awaited: input is kept in ``buffer`` and parsed when that is done."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        self.config = server.config
        self.transport: asyncio.Transport | None = None
        self.session = Session()
        self.envelope = Envelope()
        self.buffer = b""
        self.out: list[bytes] = []
        self.deadline = 0.0
        self.busy = False
        self.closed = False
        self.processing = False
        self.write_paused = False
        self.read_paused = False
        self.discarding = False  # dropping an over-long line until its end
        self.starting_tls = False
        self.bogus = BOGUS_LIMIT
        self.auth_step: tuple[str, bytes | None] | None = None  # (mechanism, login)
        # DATA phase
        self.in_data = False
        self.chunks: list[bytes] = []
        self.data_size = 0  # bytes of the DATA stream so far
        self.tail = b"\r\n"  # its last bytes (a line end before the first byte)
        self.since_reset = 0
        self.too_much = False
        self.stuffed = False  # a line of the message starts with a (stuffed) period

    # --- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.session.peer = transport.get_extra_info("peername")
        self.server.connections.add(self)
        self.deadline = time.monotonic() + self.config.timeout
        transport.write(self.server.greeting)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.chunks = []
        self.buffer = b""

    def eof_received(self) -> bool | None:
        return None  # close; a message without its end-of-data line is dropped

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._run()

    def data_received(self, data: bytes) -> None:
        if self.starting_tls:
            return  # plaintext after STARTTLS, before the TLS layer took the socket over
        if self.in_data and not self.buffer:
            data = self._data_chunk(data)  # the common case: the message's own bytes
            if self.in_data:
                return
            self.buffer = data
        else:
            self.buffer = self.buffer + data if self.buffer else data
        self._run()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    # --- input ---------------------------------------------------------------------

    def _run(self) -> None:
        if self.processing or self.closed:
            return
        self.processing = True
        try:
            self._process()
        finally:
            self.processing = False
        self._flush()
        if self.transport is not None and not self.closed:
            wanted = (self.busy or self.write_paused) and len(self.buffer) > PAUSE_BYTES
            if wanted != self.read_paused:
                self.read_paused = wanted
                (self.transport.pause_reading if wanted else self.transport.resume_reading)()

    def _process(self) -> None:
        buf = self.buffer
        pos = 0
        try:
            while not (self.busy or self.closed or self.write_paused):
                if self.in_data:
                    rest = buf[pos:] if pos else buf
                    buf, pos = b"", 0
                    if not rest:
                        break
                    buf = self._data_chunk(rest)
                    continue
                end = buf.find(b"\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE:
                        self.discarding = True
                        buf, pos = b"", 0
                    break
                line = buf[pos:end].rstrip(b"\r\n")
                pos = end + 1
                if self.discarding:
                    self.discarding = False
                    self._reply("500 Command line too long")
                elif self.auth_step is not None:
                    self._auth_response(line)
                else:
                    self._line(line)
                    if self.starting_tls:  # RFC 3207 §4: what came with STARTTLS is void
                        buf, pos = b"", 0
        finally:
            self.buffer = buf[pos:] if pos else buf

    def _line(self, line: bytes) -> None:
        if not line:
            self._reply("500 Error: bad syntax")
            return
        command_bytes, _, arg_bytes = line.partition(b" ")
        try:
            command = command_bytes.upper().decode("ascii")
        except UnicodeDecodeError:
            self._reply("500 Error: bad syntax")
            return
        arg: str | None = None
        if arg_bytes:
            arg_bytes = arg_bytes.strip()
            if self.config.enable_SMTPUTF8:
                arg = arg_bytes.decode("utf-8", "surrogateescape")
            else:
                try:
                    arg = arg_bytes.decode("ascii")
                except UnicodeDecodeError:
                    self._reply("500 Error: strict ASCII mode")
                    return
        limit = (
            self.server.mail_limit
            if command == "MAIL" and self.session.extended_smtp
            else COMMAND_LIMIT
        )
        if len(line) > limit:
            self._reply("500 Command line too long")
            return
        if (
            self.config.require_starttls
            and self.config.tls_context is not None
            and not self.session.tls
            and command not in ALLOWED_BEFORE_STARTTLS
        ):
            self._reply("530 Must issue a STARTTLS command first")
            return
        method = _COMMANDS.get(command)
        if method is None:
            self.bogus -= 1
            if self.bogus < 1:
                self._reply("502 5.5.1 Too many unrecognized commands, goodbye.")
                self._close()
                return
            self._reply(f'500 Error: command "{command}" not recognized')
            return
        self.deadline = time.monotonic() + self.config.timeout
        try:
            method(self, arg)
        except Exception as error:  # a bug must not take the listener down
            log.exception("%r SMTP session exception", self.session.peer)
            self._reply(f"500 Error: ({error.__class__.__name__}) {error}")

    # --- output --------------------------------------------------------------------

    def _reply(self, text: str) -> None:
        self.out.append(text.encode(self.server.charset, self.server.errors) + b"\r\n")

    def _flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    # --- checks shared by commands -------------------------------------------------

    def _helo_needed(self, helo: str = "HELO") -> bool:
        if not self.session.host_name:
            self._reply(f"503 Error: send {helo} first")
            return True
        return False

    def _auth_needed(self) -> bool:
        if self.config.auth_required and not self.session.authenticated:
            self._reply("530 5.7.0 Authentication required")
            return True
        return False

    # --- commands ------------------------------------------------------------------

    def smtp_HELO(self, arg: str | None) -> None:
        if not arg:
            self._reply("501 Syntax: HELO hostname")
            return
        self.envelope = Envelope()
        self.session.extended_smtp = False
        self.session.host_name = arg
        self._reply(f"250 {self.config.hostname}")

    def smtp_EHLO(self, arg: str | None) -> None:
        if not arg:
            self._reply("501 Syntax: EHLO hostname")
            return
        self.envelope = Envelope()
        self.session.extended_smtp = True
        self.session.host_name = arg
        self.out.append(self.server.ehlo_tls if self.session.tls else self.server.ehlo_plain)

    def smtp_NOOP(self, arg: str | None) -> None:
        self._reply("250 OK")

    def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            self._reply("501 Syntax: RSET")
            return
        self.envelope = Envelope()
        self._reply("250 OK")

    def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            self._reply("501 Syntax: QUIT")
            return
        self._reply("221 Bye")
        self._close()

    def smtp_HELP(self, arg: str | None) -> None:
        if self._auth_needed():
            return
        tls_offered = self.config.tls_context is not None
        self._reply(help_text(arg, extended=self.session.extended_smtp, tls_offered=tls_offered))

    def smtp_VRFY(self, arg: str | None) -> None:
        if self._auth_needed():
            return
        if not arg:
            self._reply("501 Syntax: VRFY <address>")
        elif parse_path(arg)[0] is None:
            self._reply("502 Could not VRFY " + arg)
        else:
            self._reply("252 Cannot VRFY user, but will accept message and attempt delivery")

    def smtp_EXPN(self, arg: str | None) -> None:
        self._reply("502 EXPN not implemented")

    def _path(self, keyword: str, arg: str | None) -> tuple[str, list[str]] | None:
        """(address, upper-cased parameters) of MAIL/RCPT, or None once answered."""
        syntax = f"501 Syntax: {'MAIL FROM' if keyword == 'FROM:' else 'RCPT TO'}: <address>"
        if self.session.extended_smtp:
            syntax += " [SP <mail-parameters>]"
        rest = strip_keyword(keyword, arg) if arg is not None else None
        if rest is None:
            self._reply(syntax)
            return None
        address, params = parse_path(rest)
        if address is None:
            self._reply("553 5.1.3 Error: malformed address")
            return None
        if not address or (params and not self.session.extended_smtp):
            self._reply(syntax)
            return None
        return address, params.upper().split()

    def smtp_MAIL(self, arg: str | None) -> None:
        if self._helo_needed() or self._auth_needed():
            return
        path = self._path("FROM:", arg)
        if path is None:
            return
        address, options = path
        if self.envelope.mail_from:
            self._reply("503 Error: nested MAIL command")
            return
        params = parse_params(options)
        if params is None:
            self._reply("501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]")
            return
        if params.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
            self._reply("501 Error: BODY can only be one of 7BIT, 8BITMIME")
            return
        smtputf8 = params.pop("SMTPUTF8", False)
        if smtputf8 is not False and smtputf8 is not True:
            self._reply("501 Error: SMTPUTF8 takes no arguments")
            return
        if smtputf8 and not self.config.enable_SMTPUTF8:
            self._reply("501 Error: SMTPUTF8 disabled")
            return
        size = params.pop("SIZE", None)
        if size is not None:
            if not isinstance(size, str) or not size.isdigit():
                self._reply("501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]")
                return
            limit = self.config.data_size_limit
            if limit and int(size) > limit:
                self._reply("552 Error: message size exceeds fixed maximum message size")
                return
        if params:
            self._reply("555 MAIL FROM parameters not recognized or not implemented")
            return
        self.envelope.mail_from = address
        self.envelope.mail_options.extend(options)
        self.envelope.smtp_utf8 = bool(smtputf8)
        self._reply("250 OK")

    def smtp_RCPT(self, arg: str | None) -> None:
        if self._helo_needed() or self._auth_needed():
            return
        if not self.envelope.mail_from:
            self._reply("503 Error: need MAIL command")
            return
        path = self._path("TO:", arg)
        if path is None:
            return
        address, options = path
        params = parse_params(options)
        if params is None:
            self._reply("501 Syntax: RCPT TO: <address> [SP <mail-parameters>]")
            return
        if params:
            self._reply("555 RCPT TO parameters not recognized or not implemented")
            return
        self._reply(self.server.handler.rcpt(self.session, self.envelope, address))

    def smtp_DATA(self, arg: str | None) -> None:
        if self._helo_needed() or self._auth_needed():
            return
        if not self.envelope.rcpt_tos:
            self._reply("503 Error: need RCPT command")
            return
        if arg:
            self._reply("501 Syntax: DATA")
            return
        self._reply("354 End data with <CR><LF>.<CR><LF>")
        self.in_data = True
        self.chunks = []
        self.data_size = 0
        self.tail = b"\r\n"
        self.since_reset = 0
        self.too_much = False
        self.stuffed = False

    # --- DATA ----------------------------------------------------------------------

    def _data_chunk(self, chunk: bytes) -> bytes:
        """Take bytes of the DATA stream; returns what follows its end-of-data line."""
        # The last bytes seen before are searched again with the chunk: a line start
        # there could not be told apart yet (see scan_data).
        end, stuffed = scan_data(self.tail + chunk)
        self.stuffed = self.stuffed or stuffed
        if end < 0:
            self.data_size += len(chunk)
            limit = self.config.data_size_limit
            if limit and self.data_size > limit + len(TERMINATOR):
                self.too_much = True
                self.chunks = []  # drained from here on; only the end is looked for
            else:
                self.chunks.append(chunk)
            self.tail = (self.tail + chunk[-4:])[-4:]
            # The idle timeout holds in DATA too, but only progress restarts it: a big
            # message over a slow link keeps its session, a trickler does not.
            self.since_reset += len(chunk)
            if self.since_reset >= PROGRESS_BYTES:
                self.since_reset = 0
                self.deadline = time.monotonic() + self.config.timeout
            return b""
        # ``end`` counts from the start of ``tail``; the message ends with the CRLF that
        # starts the end-of-data line.
        # (The stream seen as "CRLF" + bytes: the tail ends 2 bytes after data_size.)
        in_chunk = 2 - len(self.tail) + end  # message bytes in this chunk (-2..)
        rest = chunk[in_chunk + 3 :] if in_chunk + 3 < len(chunk) else b""
        self.in_data = False
        too_much = self.too_much
        body = b""
        if not too_much:
            if in_chunk >= 0:
                self.chunks.append(chunk[:in_chunk])
                body = b"".join(self.chunks)
            else:  # the end-of-data line began in an earlier chunk
                body = b"".join(self.chunks)[: self.data_size + in_chunk]
            limit = self.config.data_size_limit
            too_much = bool(limit and len(body) > limit)
        self.chunks = []
        if too_much:
            self._reply("552 Error: Too much mail data")
            self.envelope = Envelope()
            return rest
        self.busy = True
        try:
            if self.stuffed:
                body = unstuff(body)
            self.server.handler.data(self.session, self.envelope, body, self._data_done)
        except Exception:  # not stored: the sender keeps the message and tries again
            log.exception("%r could not take a message", self.session.peer)
            self._data_done("451 4.3.0 Could not store the message, try again later")
        return rest

    def _data_done(self, reply: str) -> None:
        if self.closed:
            return  # the sender went away before its reply: it will send again
        self.envelope = Envelope()
        self.busy = False
        self._reply(reply)
        self._run()

    # --- STARTTLS ------------------------------------------------------------------

    def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            self._reply("501 Syntax: STARTTLS")
            return
        if self.config.tls_context is None or self.session.tls:
            self._reply("454 TLS not available")
            return
        self._reply("220 Ready to start TLS")
        self._flush()
        self.busy = True
        self.starting_tls = True
        asyncio.get_running_loop().create_task(self._start_tls())

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.config.tls_context is not None
        loop = asyncio.get_running_loop()
        # From here on the TLS layer gets the socket's bytes; what reaches
        # data_received is decrypted (even before start_tls returns).
        self.starting_tls = False
        try:
            transport = await loop.start_tls(
                self.transport,
                self,
                self.config.tls_context,
                server_side=True,
                ssl_handshake_timeout=min(60.0, self.config.timeout),
            )
        except Exception as error:
            log.info("%r TLS handshake failed: %s", self.session.peer, error)
            self.abort()
            return
        if transport is None or self.closed:
            return
        self.transport = transport
        self.session = Session(peer=self.session.peer, tls=True)
        self.envelope = Envelope()
        self.busy = False
        self._run()

    # --- AUTH ----------------------------------------------------------------------

    def smtp_AUTH(self, arg: str | None) -> None:
        if self._helo_needed("EHLO"):
            return
        if not self.session.extended_smtp or self.config.authenticator is None:
            self._reply("500 Error: command 'AUTH' not recognized")
            return
        if self.config.auth_require_tls and not self.session.tls:
            self._reply("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.session.authenticated:
            self._reply("503 Already authenticated")
            return
        if not arg:
            self._reply("501 Not enough value")
            return
        words = arg.split()
        if len(words) > 2:
            self._reply("501 Too many values")
            return
        mechanism = words[0].upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            self._reply("504 5.5.4 Unrecognized authentication type")
            return
        if len(words) == 1:
            self.auth_step = (mechanism, None)
            self._reply("334 " if mechanism == "PLAIN" else "334 VXNlciBOYW1lAA==")
            return
        decoded = self._b64(words[1].encode())
        if decoded is not None:
            self._auth_value(mechanism, None, decoded)

    def _b64(self, blob: bytes) -> bytes | None:
        try:
            return base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            self._reply("501 5.5.2 Can't decode base64")
            return None

    def _auth_response(self, line: bytes) -> None:
        assert self.auth_step is not None
        mechanism, login = self.auth_step
        self.auth_step = None
        if line.strip() == b"*":
            self._reply("501 5.7.0 Auth aborted")
            return
        decoded = self._b64(line.strip())
        if decoded is not None:
            self._auth_value(mechanism, login, decoded)

    def _auth_value(self, mechanism: str, login: bytes | None, value: bytes) -> None:
        if mechanism == "LOGIN" and login is None:
            self.auth_step = (mechanism, value)
            self._reply("334 UGFzc3dvcmQA")  # "Password\0", as aiosmtpd asked
            return
        if mechanism == "PLAIN":
            parts = value.split(b"\x00")
            if len(parts) != 3:
                self._reply("501 5.5.2 Can't split auth value")
                return
            login, value = parts[1], parts[2]
        assert login is not None and self.config.authenticator is not None
        self.busy = True
        future = asyncio.get_running_loop().run_in_executor(
            None, self.config.authenticator, mechanism, login, value
        )
        future.add_done_callback(self._auth_done)

    def _auth_done(self, future: asyncio.Future[str | None]) -> None:
        if self.closed:
            return
        self.busy = False
        try:
            user = future.result()
        except Exception:
            log.exception("%r AUTH failed", self.session.peer)
            user = None
        if user is None:
            self._reply("535 5.7.8 Authentication credentials invalid")
        else:
            self.session.authenticated = True
            self.session.auth_user = user
            self._reply("235 2.7.0 Authentication successful")
        self._run()


_COMMANDS: dict[str, Callable[[SMTPProtocol, str | None], None]] = {
    name[5:]: method for name, method in vars(SMTPProtocol).items() if name.startswith("smtp_")
}
