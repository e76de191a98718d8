"""File type detection: strong magic bytes first, then the extension, then text sniffing."""

from __future__ import annotations

import re
from enum import Enum


class Kind(Enum):
    EML = "eml"
    MBOX = "mbox"
    MSG = "msg"
    PST = "pst"
    ZIP = "zip"
    UNKNOWN = "unknown"


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PST_MAGIC = b"!BDN"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
SNIFF_BYTES = 4096

_EXT = {
    ".eml": Kind.EML,
    ".mbox": Kind.MBOX,
    ".mbx": Kind.MBOX,
    ".mbs": Kind.MBOX,
    ".msg": Kind.MSG,
    ".pst": Kind.PST,
    ".ost": Kind.PST,
    ".zip": Kind.ZIP,
}
# A header field line: field name, colon (RFC 5322 ftext is printable ASCII minus colon).
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")


def detect(name: str, head: bytes) -> Kind:
    """Classify a file by its first bytes and its name.

    Binary containers (ZIP, OLE/MSG, PST/OST) are recognised by magic bytes whatever the
    name. A ``.eml`` file is one message even when it starts with an mbox ``From `` line
    (some tools save single messages that way; the bytes are kept as they are). A ``.msg``
    that is not OLE is RFC 5322 text (mime4j's test data is named so). Files with other
    names are sniffed: a ``From `` line makes an MBOX, a header line an EML.
    """
    if head.startswith(ZIP_MAGICS):
        return Kind.ZIP
    if head.startswith(OLE_MAGIC):
        return Kind.MSG
    if head.startswith(PST_MAGIC):
        return Kind.PST
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    kind = _EXT.get(ext)
    if kind is Kind.MSG:
        return Kind.EML
    if kind is Kind.EML:
        return Kind.EML
    if kind is not None and kind is not Kind.MBOX:
        return kind  # a .pst/.zip without its magic: the reader reports it corrupt
    text = head.lstrip(b"\r\n")
    if text.startswith(b"From "):
        return Kind.MBOX
    if kind is Kind.MBOX:
        return Kind.MBOX
    if _HEADER_LINE.match(text):
        return Kind.EML
    return Kind.UNKNOWN
