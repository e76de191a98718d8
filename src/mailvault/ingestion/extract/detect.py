"""Which format an attachment is, from its magic bytes, content type and file name.

Magic bytes win over what the sender declared: a ``.bin`` that starts with ``%PDF-`` is
a PDF, a ``text/plain`` part that is a ZIP is looked into as a ZIP. The zip-based office
formats are all reported as ``"zip"`` here; which one it really is (DOCX, XLSX, PPTX,
ODF) is decided in the worker process from the members, since reading a hostile ZIP's
directory is itself work that belongs behind the time and memory limits.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass

# Formats run in the worker pool.
PDF, ZIP, RTF = "pdf", "zip", "rtf"
# Formats handled in the calling process (cheap and linear).
TEXT, HTML = "text", "html"

_OFFICE_ZIP = {"docx", "xlsx", "pptx", "odt", "ods", "odp"}

CONTENT_TYPES: dict[str, str] = {
    "application/pdf": PDF,
    "application/x-pdf": PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template": "docx",
    "application/vnd.ms-word.document.macroenabled.12": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template": "xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow": "pptx",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/rtf": RTF,
    "application/x-rtf": RTF,
    "text/rtf": RTF,
    "text/richtext": RTF,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/xml": HTML,
    "application/xml": HTML,
    "application/json": TEXT,
    "application/x-sh": TEXT,
}

EXTENSIONS: dict[str, str] = {
    ".pdf": PDF,
    ".docx": "docx",
    ".docm": "docx",
    ".dotx": "docx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xltx": "xlsx",
    ".pptx": "pptx",
    ".pptm": "pptx",
    ".ppsx": "pptx",
    ".odt": "odt",
    ".ods": "ods",
    ".odp": "odp",
    ".rtf": RTF,
    ".htm": HTML,
    ".html": HTML,
    ".xhtml": HTML,
    ".xml": HTML,
    **dict.fromkeys(
        (
            ".txt",
            ".text",
            ".csv",
            ".tsv",
            ".md",
            ".markdown",
            ".log",
            ".json",
            ".ini",
            ".cfg",
            ".conf",
            ".yaml",
            ".yml",
            ".ics",
            ".vcf",
            ".rst",
            ".tex",
            ".sql",
            ".py",
            ".r",
            ".sh",
            ".diff",
            ".patch",
            ".eml",
        ),
        TEXT,
    ),
}

# Binary formats that are recognised only to say clearly that they are not extracted.
_UNSUPPORTED_MAGIC: list[tuple[bytes, str]] = [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Microsoft Office binary document"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"GIF8", "GIF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
]

_GENERIC_TYPES = {
    "",
    "application/octet-stream",
    "binary/octet-stream",
    "application/x-download",
    "application/download",
    "application/force-download",
    "application/unknown",
}


@dataclass(frozen=True)
class Detected:
    kind: str | None  # PDF, ZIP, RTF, TEXT, HTML, "custom:<type>", or None
    label: str  # human-readable, for problems
    hint: str = ""  # for ZIP: the office format that was declared, if any
    charset: str = ""  # declared charset parameter of the content type
    refusal: str = ""  # set when the content cannot be the declared format


def split_content_type(content_type: str) -> tuple[str, str]:
    """``"Text/Plain; charset=ISO-8859-1"`` → ``("text/plain", "iso-8859-1")``."""
    main, _, rest = (content_type or "").partition(";")
    charset = ""
    for param in rest.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower()
    return main.strip().lower(), charset


def valid_charset(name: str) -> str:
    if not name:
        return ""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return ""


def _magic(data: bytes) -> str | None:
    head = data[:1024]
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if b"%PDF-" in head:
        return PDF
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:5] == b"{\\rtf":
        return RTF
    return None


def _unsupported_magic(data: bytes) -> str:
    for magic, label in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            return label
    return ""


def looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def looks_like_text(data: bytes) -> bool:
    """Valid UTF-8 without control characters other than whitespace, in the first 4 KiB."""
    sample = data[:4096]
    if not sample:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)


def detect(
    filename: str, content_type: str, data: bytes, custom_types: frozenset[str] = frozenset()
) -> Detected:
    ctype, charset = split_content_type(content_type)
    ext = os.path.splitext(filename or "")[1].lower()
    label = ctype or "no content type"
    if ext:
        label += f", {ext}"
    if ctype in custom_types:
        return Detected(f"custom:{ctype}", label)

    declared = CONTENT_TYPES.get(ctype)
    if declared is None and ctype in _GENERIC_TYPES:
        declared = EXTENSIONS.get(ext)
    if declared is None and ctype.startswith("text/"):
        declared = TEXT

    magic = _magic(data)
    if magic == ZIP:
        return Detected(ZIP, label, hint=declared if declared in _OFFICE_ZIP else "")
    if magic is not None:
        return Detected(magic, label)
    unsupported = _unsupported_magic(data)
    if unsupported:
        return Detected(None, f"{unsupported} ({label})")

    if declared == PDF:
        return Detected(PDF, label, refusal="not a PDF file (no %PDF- header)")
    if declared in _OFFICE_ZIP:
        return Detected(ZIP, label, refusal=f"not a {declared.upper()} file (not a ZIP archive)")
    if declared == RTF:
        return Detected(RTF, label, refusal="not an RTF file (no {\\rtf header)")
    if declared in (TEXT, HTML):
        if declared == TEXT and looks_like_html(data):
            declared = HTML
        return Detected(declared, label, charset=charset)
    if ctype in _GENERIC_TYPES:
        if looks_like_html(data):
            return Detected(HTML, label)
        if looks_like_text(data):
            return Detected(TEXT, label)
    return Detected(None, label)
