"""The parse step: what can be read from a message's raw bytes.

Parsing never raises and never loses a message: whatever cannot be read is left empty,
``problem`` says why, and a message whose headers cannot be made sense of at all is
flagged ``unparseable`` (it is still stored raw and found by whatever was read).
Only the first ``MAX_TEXT_CHARS`` of text per message feed the index, so memory stays
bounded for huge messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import Header, decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from mailvault.ingestion.extract.text import html_to_text

MAX_TEXT_CHARS = 256 * 1024
MAX_PARTS = 500

_WS = re.compile(r"\s+")


@dataclass
class ParsedMessage:
    message_id: str = ""
    date: datetime | None = None
    from_address: str = ""
    from_name: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    body_text: str = ""
    attachment_names: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    unparseable: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def has_attachments(self) -> bool:
        return bool(self.attachment_names)

    def as_tuple(self) -> tuple[object, ...]:
        """The fields in order (cheap to pickle; see :meth:`from_tuple`)."""
        return tuple(getattr(self, name) for name in _FIELDS)

    @classmethod
    def from_tuple(cls, values: tuple[object, ...]) -> ParsedMessage:
        return cls(*values)  # type: ignore[arg-type]


_FIELDS = tuple(f.name for f in fields(ParsedMessage))


def header_text(value: object) -> str:
    """Decode an RFC 2047 header to text, tolerating every kind of breakage."""
    if type(value) is str and "=?" not in value:
        # No encoded word: RFC 2047 decoding would hand the text back as it is.
        if "  " not in value and value.isprintable():
            # No run of whitespace to fold (a printable text's only whitespace is the
            # ASCII space): what the substitution would give, at a quarter of its cost.
            return value.strip()
        return _WS.sub(" ", value).strip()
    return _decoded_header_text(value)


def _decoded_header_text(value: object) -> str:
    """:func:`header_text` through the email package's decoder, whatever the value."""
    if value is None:
        return ""
    if isinstance(value, Header):
        # compat32 hands raw 8-bit header bytes over as one "unknown-8bit" chunk (RFC 6532
        # UTF-8 headers, or a legacy 8-bit charset): decode them instead of "\ufffd"s.
        chunks = decode_header(value)
        if len(chunks) == 1 and chunks[0][1] == "unknown-8bit" and isinstance(chunks[0][0], bytes):
            try:
                value = chunks[0][0].decode("utf-8")
            except UnicodeDecodeError:
                value = chunks[0][0].decode("cp1252", "replace")
    raw = str(value)
    try:
        return _WS.sub(" ", str(make_header(decode_header(raw)))).strip()
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return _WS.sub(" ", raw).strip()


def _addresses(msg: EmailMessage, name: str, fast: bool) -> list[tuple[str, str]]:
    if not fast:
        values = tuple(_decoded_header_text(v) for v in msg.get_all(name, []))
        return list(_address_pairs.__wrapped__(values))
    values = tuple(header_text(v) for v in msg.get_all(name, []))
    if not any("@" in v for v in values):
        return []  # no address to find (and nothing to parse)
    return list(_address_pairs(values))


@lru_cache(maxsize=4096)
def _address_pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, address) of every address in ``values``; cached, as the same senders and
    list addresses come back message after message."""
    try:
        pairs = getaddresses(list(values))
    except (ValueError, IndexError):
        return ()
    return tuple((n.strip(), a.strip().casefold()) for n, a in pairs if a and "@" in a)


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: n for n, name in enumerate(_MONTH_NAMES, 1)}
# The usual form of a Date header: "[Tue, ]1 Apr 2003 00:06:38 +0200[ (CEST)]".
_PLAIN_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
    r"|Oct|Nov|Dec) ([0-9]{4}) ([0-9]{2}):([0-9]{2})(?::([0-9]{2}))? ([+-])([0-9]{2})([0-9]{2})"
    r"(?: \([^()]*\))?"
)
_ZONES: dict[str, timezone] = {}  # by "+0200": the same few offsets come back every message


def _plain_date(value: str) -> datetime | None:
    """A Date header in the usual form, read as :func:`parsedate_to_datetime` reads it but
    at half its cost (3 against 6 µs); None for anything else (that function then reads
    it, errors and oddities included: "-0000", two-digit years, zone names)."""
    match = _PLAIN_DATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    if int(year) < 100 or (sign == "-" and zone_h == zone_m == "00"):
        return None
    try:
        zone = _ZONES.get(sign + zone_h + zone_m)
        if zone is None:
            offset = int(zone_h) * 3600 + int(zone_m) * 60
            zone = timezone(timedelta(seconds=-offset if sign == "-" else offset))
            _ZONES[sign + zone_h + zone_m] = zone
        return datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0), 0, zone
        )
    except ValueError:  # 31 Feb, 25:00, an offset of a day: left to the email package
        return None


def _date(msg: EmailMessage, problems: list[str], fast: bool) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        plain = _plain_date(value) if fast and type(value) is str else None
        parsed = plain or parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        problems.append(f"unreadable Date header: {str(value)[:80]!r}")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # In UTC: PostgreSQL refuses offsets beyond 15:59 ("-1600" is seen in real mail).
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 with a positive offset, and the like
        problems.append(f"Date header out of range: {str(value)[:80]!r}")
        return None


def _decode_payload(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return payload.decode("latin-1", errors="replace")


def _filename(part: EmailMessage, text: Callable[[object], str]) -> str:
    try:
        name = part.get_filename()
    except (ValueError, LookupError, UnicodeError):
        return "unnamed"
    return text(name) if name else ""


_HEADER_END = re.compile(rb"\r?\n\r?\n")

# A message bigger than LARGE_MESSAGE is parsed without its long runs of base64 lines
# (the bodies of big attachments): the MIME parser needs about ten times a message's size
# in memory, and an attachment that big is past the extractor's input limit anyway. The
# stored original keeps every byte; only the index misses that attachment's text.
LARGE_MESSAGE = 16 << 20
LONG_RUN_BYTES = 1 << 20
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]{16,}\r?\n?")


def _without_long_base64(raw: bytes, problems: list[str]) -> bytes:
    """``raw`` minus every run of base64 lines longer than LONG_RUN_BYTES (one pass)."""
    view = memoryview(raw)
    out = bytearray()
    kept = 0  # raw[:kept] is dealt with
    run = -1  # start of the current run of base64 lines
    pos, n = 0, len(raw)
    while pos <= n:
        end = raw.find(b"\n", pos) + 1 or n
        base64_line = pos < n and _BASE64_LINE.fullmatch(raw, pos, end) is not None
        if base64_line and run < 0:
            run = pos
        elif not base64_line and run >= 0:
            if pos - run > LONG_RUN_BYTES:
                out += view[kept:run]
                kept = pos
                problems.append(f"an encoded body of {pos - run} bytes was not indexed")
            run = -1
        if pos == n:
            break
        pos = end
    if not kept:
        return raw
    out += view[kept:]
    return bytes(out)


_FIELD_START = re.compile(r"[\041-\071\073-\176]+:")


def _plain_header_fields(head: bytes) -> list[tuple[str, str]] | None:
    """The header fields of ``head`` exactly as the MIME parser (compat32) reads them, if
    the block is plain: ASCII, no bare CR, every line a ``Name:`` field or the
    continuation of one. None for anything else (the parser itself then reads it, with
    its defects and repairs)."""
    if not head.isascii():
        return None
    text = head.decode("ascii")
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None
    fields: list[tuple[str, str]] = []
    lines: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t"):
            if not lines:
                return None
            lines.append(line + "\n")
            continue
        if _FIELD_START.match(line) is None:
            return None
        if lines:
            fields.append(_field(lines))
        lines = [line + "\n"]
    if lines:
        fields.append(_field(lines))
    return fields


def _field(lines: list[str]) -> tuple[str, str]:
    """compat32's ``header_source_parse``: the name, and the value as it was written."""
    name, value = lines[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(lines[1:])
    return name, value.rstrip("\r\n")


def _read(raw: bytes, fast: bool) -> EmailMessage:
    """The parsed message. A single-part message (most mail) with a plain header block
    takes a fast path: the header fields are split here and the body is attached as it
    is, which gives the same message object as the MIME parser without feeding every
    line through it."""
    end = _HEADER_END.search(raw) if fast else None
    if end is not None and end.start() > 0:
        fields = _plain_header_fields(raw[: end.start()])
        if fields is not None:
            msg = EmailMessage(policy=policy.compat32)
            for name, value in fields:
                msg.set_raw(name, value)
            if msg.get_content_maintype() not in ("multipart", "message"):
                msg.set_payload(raw[end.end() :].decode("ascii", "surrogateescape"))
                return msg
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def parse_message(raw: bytes, *, fast: bool = True) -> ParsedMessage:
    """What can be read from ``raw``. ``fast=False`` leaves every step to the email
    package (no shortcuts, no caches): the reference the fast paths are tested against."""
    result = ParsedMessage()
    decode = header_text if fast else _decoded_header_text
    try:
        big = len(raw) > LARGE_MESSAGE
        msg = _read(_without_long_base64(raw, result.problems) if big else raw, fast)
    except Exception as exc:  # the parser must never lose a message
        result.unparseable = True
        result.problems.append(f"MIME parser failed: {exc}")
        result.body_text = raw[:MAX_TEXT_CHARS].decode("utf-8", "replace")
        return result
    if not msg.keys():
        result.unparseable = True
        result.problems.append("no headers found")
    for defect in msg.defects[:5]:
        result.problems.append(type(defect).__name__)

    result.message_id = decode(msg.get("Message-ID"))[:998]
    result.subject = decode(msg.get("Subject"))
    result.date = _date(msg, result.problems, fast)
    senders = _addresses(msg, "From", fast) or _addresses(msg, "Sender", fast)
    if senders:
        result.from_name, result.from_address = senders[0]
    else:
        # No parseable address (list archives write "name at host (Full Name)"): keep the
        # header's text as the sender's name, so that from: still finds it.
        result.from_name = decode(msg.get("From") or msg.get("Sender"))[:200]
    result.to = [a for _, a in _addresses(msg, "To", fast)]
    result.cc = [a for _, a in _addresses(msg, "Cc", fast)]
    result.bcc = [a for _, a in _addresses(msg, "Bcc", fast)]
    _read_parts(msg, result, decode, keep_attachments=True)
    return result


def parse_body_text(raw: bytes) -> str:
    """``parse_message(raw).body_text`` without reading the header fields or decoding
    the attachments: a phrase search checks the body texts of its candidates, and the
    addresses took half of each parse."""
    result = ParsedMessage()
    try:
        big = len(raw) > LARGE_MESSAGE
        msg = _read(_without_long_base64(raw, result.problems) if big else raw, True)
    except Exception:  # as parse_message: the raw text is what was indexed
        return raw[:MAX_TEXT_CHARS].decode("utf-8", "replace")
    _read_parts(msg, result, header_text, keep_attachments=False)
    return result.body_text


def _read_parts(
    msg: EmailMessage,
    result: ParsedMessage,
    decode: Callable[[object], str],
    *,
    keep_attachments: bool,
) -> None:
    """The body text, the attachments' names and (``keep_attachments``) their bytes."""
    texts: list[str] = []
    size = 0
    for index, part in enumerate(msg.walk()):
        if index >= MAX_PARTS:
            result.problems.append(f"more than {MAX_PARTS} MIME parts; the rest is not indexed")
            break
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = str(part.get("Content-Disposition", "")).split(";", 1)[0].strip().lower()
        filename = _filename(part, decode)
        if filename or disposition == "attachment" or content_type == "message/rfc822":
            result.attachment_names.append(filename or "unnamed")
            data = part.get_payload(decode=True) if keep_attachments else None
            if isinstance(data, bytes):
                result.attachments.append((filename, content_type, data))
            continue
        if size >= MAX_TEXT_CHARS:
            continue
        if content_type == "text/plain":
            text = _decode_payload(part)
        elif content_type == "text/html":
            text = html_to_text(_decode_payload(part))
        else:
            continue
        texts.append(text[: MAX_TEXT_CHARS - size])
        size += len(texts[-1])
    result.body_text = "\n".join(texts)
