"""Byte-exact access to the parts of a MIME message.

Python's ``email`` package re-serializes what it parses, which may change bytes (line
endings, header folding). An attached original (``message/rfc822``) must be archived
exactly as it was attached, so this module cuts parts out of the raw bytes instead:
headers end at the first empty line; a multipart body is split at its boundary lines;
the line break before a boundary belongs to the boundary (RFC 2046 §5.1.1).
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class RawPart:
    header_bytes: bytes
    body: bytes  # still transfer-encoded

    @property
    def headers(self) -> Message:
        return BytesHeaderParser(policy=compat32).parsebytes(self.header_bytes + b"\n")

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    def decoded_body(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone (binary/7bit/8bit as is)."""
        encoding = str(self.headers.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding == "base64":
            try:
                return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", self.body))
            except (binascii.Error, ValueError):
                return self.body
        if encoding == "quoted-printable":
            return quopri.decodestring(self.body)
        return self.body


def split_headers(raw: bytes) -> RawPart:
    match = _HEADER_END.search(raw)
    if match is None:
        return RawPart(raw, b"")
    return RawPart(raw[: match.start()], raw[match.end() :])


def _boundary(part: RawPart) -> bytes | None:
    boundary = part.headers.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        return None
    return boundary.encode("latin-1", "replace")


def child_parts(part: RawPart) -> list[RawPart]:
    """The direct children of a multipart part, byte-exact; [] when it is not one."""
    if not part.content_type.startswith("multipart/"):
        return []
    boundary = _boundary(part)
    if boundary is None:
        return []
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?=\r?\n|$)")
    children: list[RawPart] = []
    start: int | None = None
    for match in delimiter.finditer(part.body):
        if start is not None:
            segment = part.body[start : match.start()]
            children.append(split_headers(segment))
        if match.group(1):  # the closing delimiter
            start = None
            break
        end = match.end()
        # Skip the line break that ends the delimiter line.
        if part.body[end : end + 2] == b"\r\n":
            end += 2
        elif part.body[end : end + 1] == b"\n":
            end += 1
        start = end
    if start is not None:  # no closing delimiter: keep what is there
        children.append(split_headers(part.body[start:]))
    return children


def walk(part: RawPart) -> list[RawPart]:
    """Every part, depth first, the part itself included (message/rfc822 not entered)."""
    found = [part]
    for child in child_parts(part):
        found.extend(walk(child))
    return found
