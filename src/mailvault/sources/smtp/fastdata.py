"""aiosmtpd's SMTP with a DATA phase that reads in large blocks.

aiosmtpd reads DATA one line at a time (one ``readuntil`` per line): a 100 KB message is
over a thousand awaits, which caps one process at about a hundred such messages a
second. This reads 64 KiB blocks, finds the ``CRLF.CRLF`` terminator with a byte search,
and undoes dot-stuffing with one regular-expression pass (RFC 5321 §4.5.2). The size
limit is enforced while reading (the rest is drained, then ``552``); everything after
DATA is aiosmtpd's own behaviour.
"""

from __future__ import annotations

import asyncio
import re

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP

BLOCK = 64 * 1024
_TERMINATOR = b"\r\n.\r\n"
_STUFFED = re.compile(rb"(^|\r\n)\.")


class FastDataSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit
        buffer = bytearray()
        received = 0
        too_much = False
        while True:
            # An empty message is just the terminating dot line.
            if received == 0 and buffer[:3] == b".\r\n":
                body, rest = b"", bytes(buffer[3:])
                break
            end = buffer.find(_TERMINATOR, max(0, len(buffer) - len(_TERMINATOR) - BLOCK))
            if end >= 0:
                body, rest = bytes(buffer[: end + 2]), bytes(buffer[end + 5 :])
                break
            try:
                chunk = await self._reader.read(BLOCK)
            except asyncio.CancelledError:
                self._writer.close()
                raise
            if not chunk:  # the client went away mid-DATA: nothing is kept
                return
            buffer += chunk
            if limit and received + len(buffer) > limit + len(_TERMINATOR):
                too_much = True
                # Keep only what a terminator split across blocks could need.
                received += len(buffer) - len(_TERMINATOR)
                del buffer[: -len(_TERMINATOR)]
        if rest:  # a client that pipelined anyway: give the bytes back to the reader
            self._reader._buffer[0:0] = rest  # type: ignore[attr-defined]
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        original = _STUFFED.sub(rb"\1", body)
        self.envelope.content = original
        self.envelope.original_content = original
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class FastController(Controller):
    """aiosmtpd's threaded controller serving :class:`FastDataSMTP`."""

    def factory(self) -> SMTP:
        return FastDataSMTP(self.handler, **self.SMTP_kwargs)
