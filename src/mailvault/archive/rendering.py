"""Turning an archived original into something safe to show in Web Access.

HTML is sanitized with nh3 (Ammonia): no scripts, no event handlers, no forms, no frames.
Remote content (images, styles from the web) is dropped unless the reader asks for it.
The sanitized body is additionally served with a strict Content-Security-Policy inside a
sandboxed iframe, so a sanitizer miss still cannot run code or phone home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser

import nh3

from mailvault.ingestion.parse import header_text

SHOWN_HEADERS = ("From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject")

_ALLOWED_TAGS = (nh3.ALLOWED_TAGS | {"font", "center", "style"}) - {"img"}
_ALLOWED_TAGS_WITH_IMAGES = _ALLOWED_TAGS | {"img"}
_GENERIC_ATTRIBUTES = {
    "style",
    "class",
    "align",
    "valign",
    "width",
    "height",
    "bgcolor",
    "color",
    "border",
    "cellpadding",
    "cellspacing",
    "dir",
    "lang",
    "title",
}


@dataclass(frozen=True)
class AttachmentInfo:
    index: int
    filename: str
    content_type: str
    size: int


@dataclass
class RenderedMessage:
    headers: list[tuple[str, str]] = field(default_factory=list)
    html: str = ""
    text: str = ""
    attachments: list[AttachmentInfo] = field(default_factory=list)
    has_remote_content: bool = False


def _parse(raw: bytes) -> Message:
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def _leaf_parts(message: Message) -> list[Message]:
    return [part for part in message.walk() if not part.is_multipart()]


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";", 1)[0].strip().lower()
    return (
        bool(part.get_filename())
        or disposition == "attachment"
        or (part.get_content_type() == "message/rfc822")
    )


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1", errors="replace")


def sanitize_html(markup: str, *, allow_remote: bool) -> tuple[str, bool]:
    """Return the sanitized HTML and whether remote content was present."""
    found_remote = False

    def keep_attribute(tag: str, attribute: str, value: str) -> str | None:
        nonlocal found_remote
        if attribute in ("src", "background") or (tag == "link" and attribute == "href"):
            lowered = value.strip().lower()
            if lowered.startswith(("http:", "https:", "//")):
                found_remote = True
                return value if allow_remote else None
            if lowered.startswith("data:image/"):
                return value
            return None
        return value

    attributes: dict[str, set[str]] = {
        "*": _GENERIC_ATTRIBUTES,
        "a": {"href"},
        "img": {"src", "alt"},
        "td": {"background", "colspan", "rowspan"},
        "th": {"colspan", "rowspan"},
        "table": {"background"},
    }
    cleaned = nh3.clean(
        markup,
        tags=_ALLOWED_TAGS_WITH_IMAGES,
        clean_content_tags={"script", "head", "title"},
        attributes=attributes,
        attribute_filter=keep_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaned, found_remote


def render_message(raw: bytes, *, allow_remote: bool = False) -> RenderedMessage:
    message = _parse(raw)
    rendered = RenderedMessage()
    for name in SHOWN_HEADERS:
        for value in message.get_all(name, []):
            rendered.headers.append((name, header_text(value)))
    html_part: Message | None = None
    text_part: Message | None = None
    for index, part in enumerate(_leaf_parts(message)):
        if _is_attachment(part):
            payload = part.get_payload(decode=True)
            rendered.attachments.append(
                AttachmentInfo(
                    index=index,
                    filename=header_text(part.get_filename() or "") or f"attachment-{index}",
                    content_type=part.get_content_type(),
                    size=len(payload) if isinstance(payload, bytes) else 0,
                )
            )
        elif part.get_content_type() == "text/html" and html_part is None:
            html_part = part
        elif part.get_content_type() == "text/plain" and text_part is None:
            text_part = part
    if html_part is not None:
        rendered.html, rendered.has_remote_content = sanitize_html(
            _decode(html_part), allow_remote=allow_remote
        )
    if text_part is not None:
        rendered.text = _decode(text_part)
    if not rendered.html and not rendered.text and not message.is_multipart():
        rendered.text = _decode(message)
    return rendered


def attachment_payload(raw: bytes, index: int) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of the leaf part at ``index``, if it is an attachment."""
    parts = _leaf_parts(_parse(raw))
    if not 0 <= index < len(parts) or not _is_attachment(parts[index]):
        return None
    part = parts[index]
    payload = part.get_payload(decode=True)
    if part.get_content_type() == "message/rfc822" and not isinstance(payload, bytes):
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        payload = first.as_bytes() if isinstance(first, Message) else b""
    filename = header_text(part.get_filename() or "") or f"attachment-{index}"
    return filename, part.get_content_type(), payload if isinstance(payload, bytes) else b""
