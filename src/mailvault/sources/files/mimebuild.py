"""Rebuild RFC 5322 messages from Outlook items (MSG files, PST/OST messages).

Outlook stores no original MIME. The message is rebuilt: the transport headers
(PR_TRANSPORT_MESSAGE_HEADERS) are kept verbatim when present, minus the MIME structure
headers that described the lost original body; otherwise From/To/Cc/Bcc/Subject/Date/
Message-ID are written from the item's properties. The body is ``multipart/mixed`` of a
``multipart/alternative`` (text and HTML), then the attachments (embedded messages as
``message/rfc822``; an RTF-only body as ``message.rtf``). Boundaries are derived from a
hash of the content, so the same item always gives the same bytes: byte-exactness and
deduplication then apply to this reconstructed message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from email import encoders
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from email.utils import format_datetime, formataddr

_DROP_HEADERS = {
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
    "content-length",
}
_FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:")
_POLICY = compat32.clone(linesep="\r\n")


@dataclass
class Attachment:
    name: str
    data: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None
    embedded: bytes | None = None  # an attached message, already rebuilt


@dataclass
class OutlookMessage:
    source: str  # "msg" or "pst"
    transport_headers: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)  # used without transport
    plain: str | None = None
    html: str | None = None
    rtf: bytes | None = None
    attachments: list[Attachment] = field(default_factory=list)


def header_value(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def address(name: str | None, addr: str | None) -> str:
    name = (name or "").strip()
    addr = (addr or "").strip()
    if not addr:
        return header_value(name)
    if not name or name == addr:
        return addr
    return formataddr((name, addr), charset="utf-8")


def date_header(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(value)


def _kept_transport_headers(text: str) -> bytes:
    out: list[str] = []
    keep = True
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if out:
                break  # end of the header block
            continue
        if line[0] in " \t":
            if keep and out:
                out.append(line)
            continue
        m = _FIELD.match(line)
        keep = not (m and m.group(1).lower() in _DROP_HEADERS)
        if keep:
            out.append(line)
    return "".join(f"{ln}\r\n" for ln in out).encode("utf-8", "surrogateescape")


def _text_part(text: str, subtype: str) -> MIMEText:
    charset = Charset("utf-8")
    charset.body_encoding = QP
    return MIMEText(text, subtype, charset)  # type: ignore[arg-type]


def _attachment_part(att: Attachment) -> Message:
    part: Message
    if att.embedded is not None:
        inner = BytesParser(policy=compat32).parsebytes(att.embedded)
        part = MIMEMessage(inner)
    else:
        maintype, _, subtype = att.content_type.partition("/")
        if not subtype or not maintype.isascii():
            maintype, subtype = "application", "octet-stream"
        part = MIMEBase(maintype, subtype)
        part.set_payload(att.data)
        encoders.encode_base64(part)
    if att.name:
        name: str | tuple[str, str, str] = (
            att.name if att.name.isascii() else ("utf-8", "", att.name)
        )
        part.add_header("Content-Disposition", "attachment", filename=name)
    if att.content_id:
        part.add_header("Content-ID", f"<{att.content_id.strip('<>')}>")
    return part


def _body(msg: OutlookMessage) -> Message:
    texts: list[Message] = []
    if msg.plain is not None:
        texts.append(_text_part(msg.plain, "plain"))
    if msg.html is not None:
        texts.append(_text_part(msg.html, "html"))
    atts = list(msg.attachments)
    if msg.rtf is not None and not texts:
        atts.insert(0, Attachment("message.rtf", msg.rtf, "application/rtf"))
    if not texts:
        texts.append(_text_part("", "plain"))
    body: Message = texts[0] if len(texts) == 1 else MIMEMultipart("alternative", None, texts)
    if not atts:
        return body
    return MIMEMultipart("mixed", None, [body, *(_attachment_part(a) for a in atts)])


def _set_boundaries(root: Message, seed: bytes) -> None:
    digest = hashlib.sha256(seed)
    parts = list(root.walk())
    for part in parts:
        del part["MIME-Version"]  # written once, in the top-level headers
        if not part.is_multipart():
            payload = part.get_payload()
            digest.update(payload.encode("ascii", "replace") if isinstance(payload, str) else b"")
    tag = digest.hexdigest()[:24]
    for n, part in enumerate(p for p in parts if p.get_content_maintype() == "multipart"):
        part.set_boundary(f"----=_mv_{tag}_{n}")


def build_message(msg: OutlookMessage) -> bytes:
    """Serialize an Outlook item as RFC 5322 bytes (CRLF line ends), deterministically."""
    if msg.transport_headers and msg.transport_headers.strip():
        head = _kept_transport_headers(msg.transport_headers)
    else:
        head = "".join(f"{k}: {v}\r\n" for k, v in msg.headers if v).encode("ascii", "replace")
    head += b"MIME-Version: 1.0\r\n"
    head += f"X-Mailvault-Converted-From: {msg.source}\r\n".encode()
    body = _body(msg)
    _set_boundaries(body, head)
    return head + body.as_bytes(policy=_POLICY)
