"""Parsing helpers of the SMTP server (:mod:`.protocol`): paths, ESMTP parameters, HELP.

A plain ``<local@domain>`` path takes a regular-expression fast path; anything else
(quoted local parts, source routes, the null path ``<>``, a path without brackets) goes
through the standard library's RFC 5322 address parser, so the result is what the
listener produced when it ran on aiosmtpd.
"""

from __future__ import annotations

import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

TERMINATOR = b"\r\n.\r\n"

# A dot-atom address in angle brackets (RFC 5321 Path without source route or quotes).
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(.*)", re.S)

# HELP texts (RFC 5321 §4.1.1.8); STARTTLS is listed only where TLS is offered.
SYNTAX = {
    "AUTH": "AUTH <mechanism>",
    "DATA": "DATA",
    "EHLO": "EHLO hostname",
    "HELO": "HELO hostname",
    "HELP": "HELP [command]",
    "MAIL": "MAIL FROM: <address>",
    "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT",
    "RCPT": "RCPT TO: <address>",
    "RSET": "RSET",
    "STARTTLS": "STARTTLS",
    "VRFY": "VRFY <address>",
}
EXTENDED_SYNTAX = {"MAIL": " [SP <mail-parameters>]", "RCPT": " [SP <mail-parameters>]"}


def unstuff(body: bytes) -> bytes:
    """The message as sent: a line's leading period removed (RFC 5321 §4.5.2)."""
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")


def strip_keyword(keyword: str, arg: str) -> str | None:
    """``arg`` after ``FROM:``/``TO:`` (any case), or None when it does not start so."""
    if arg[: len(keyword)].upper() == keyword:
        return arg[len(keyword) :].strip()
    return None


def parse_path(arg: str) -> tuple[str | None, str]:
    """(address, the parameters after it); address None when it cannot be parsed,
    "" when there is none."""
    if not arg:
        return "", ""
    match = _PLAIN_PATH.fullmatch(arg)
    if match is not None:
        return match.group(1), match.group(2).lstrip()
    parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
    try:
        address, rest = parse(arg)
    except HeaderParseError:
        return None, ""
    return str(address.addr_spec), rest


def parse_params(words: list[str]) -> dict[str, str | bool] | None:
    """ESMTP parameters as a dict (a keyword alone is True); None when one is malformed
    (RFC 5321 §4.1.2 esmtp-param)."""
    result: dict[str, str | bool] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not name.isalnum() or (eq and not value):
            return None
        result[name] = value if eq else True
    return result


def help_text(arg: str | None, *, extended: bool, tls_offered: bool) -> str:
    commands = sorted(c for c in SYNTAX if c != "STARTTLS" or tls_offered)
    if arg:
        name = arg.upper()
        if name in commands:
            return (
                "250 Syntax: " + SYNTAX[name] + (EXTENDED_SYNTAX.get(name, "") if extended else "")
            )
        return "501 Supported commands: " + " ".join(commands)
    return "250 Supported commands: " + " ".join(commands)


def scan_data(window: bytes) -> tuple[int, bool]:
    """(where the end-of-data line's leading CRLF starts in ``window``, or -1; whether a
    line starting with a period, dot-stuffed, came before it).

    Both are a ``CRLF .``. The search hops from period to period (``memchr``, many
    times faster than a search for the three bytes), so a message with few periods —
    base64 attachments have none — costs about one quick pass; text dense with periods
    switches to searching for ``CRLF .`` itself after a few dozen hops. A ``CRLF .``
    among the last four bytes is undecided (is ``CRLF`` next?): the caller searches
    those bytes again with the next chunk."""
    stuffed = False
    last = len(window) - len(TERMINATOR)  # the last start that can be decided
    dot = window.find(b".", 2)
    for _ in range(64):
        if dot < 0 or dot - 2 > last:
            return -1, stuffed
        if window[dot - 2 : dot] == b"\r\n":
            if window[dot + 1 : dot + 3] == b"\r\n":
                return dot - 2, stuffed
            stuffed = True
        dot = window.find(b".", dot + 1)
    if dot < 0:
        return -1, stuffed
    start = window.find(b"\r\n.", dot - 2)
    while 0 <= start <= last:
        if window[start + 3 : start + 5] == b"\r\n":
            return start, stuffed
        stuffed = True
        start = window.find(b"\r\n.", start + 3)
    return -1, stuffed
