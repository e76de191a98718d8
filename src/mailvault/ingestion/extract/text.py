"""Plain text and HTML attachments, decoded in the calling process (cheap and linear)."""

from __future__ import annotations

import codecs
import html
import re

import nh3

from mailvault.ingestion.extract.detect import valid_charset
from mailvault.ingestion.extract.types import ExtractResult, Limits, TextSink, truncated_problem

_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
# Declared charsets that senders put on anything: valid UTF-8 is tried before them.
_WEAK_CHARSETS = {"ascii", "latin-1", "iso8859-1", "cp1252", "utf-8"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.I)
# Tags after which a browser starts a new line: without a break there, the text of two
# blocks would run together ("friends</p><p>café" would index as "friendscafé").
_BLOCK_END = re.compile(
    r"<(?:br|hr|/p|/div|/li|/tr|/td|/th|/h[1-6]|/table|/blockquote|/pre|/title)\b[^>]*>",
    re.I,
)
_INLINE_WS = re.compile(r"[ \t\f\v\r\xa0]+")
_LINE_BREAKS = re.compile(r" ?\n\s*")


def _decode(data: bytes, encoding: str) -> str:
    """Strict decode that tolerates a multi-byte character cut off at the end."""
    return codecs.getincrementaldecoder(encoding)("strict").decode(data, final=False)


def decode_text(data: bytes, charset: str = "") -> tuple[str, str | None]:
    """Text of ``data``: BOM, then the declared charset, UTF-8, cp1252, latin-1.

    Returns (text, problem); the problem is set when the bytes are not text at all.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), None
    sample = data[:8192]
    if b"\x00" in sample:
        zeros_odd, zeros_even = sample[1::2].count(0), sample[0::2].count(0)
        if zeros_odd > len(sample) // 4 and zeros_even <= len(sample) // 50:
            return data.decode("utf-16-le", errors="replace"), None
        if zeros_even > len(sample) // 4 and zeros_odd <= len(sample) // 50:
            return data.decode("utf-16-be", errors="replace"), None
        return "", "binary content, not text"
    declared = valid_charset(charset)
    candidates = ["utf-8", declared] if declared in _WEAK_CHARSETS else [declared, "utf-8"]
    for encoding in [*candidates, "cp1252"]:
        if not encoding:
            continue
        try:
            return _decode(data, encoding), None
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), None


def html_to_text(markup: str) -> str:
    """Visible text of HTML: tags, scripts, styles and head dropped, entities decoded."""
    markup = _BLOCK_END.sub(lambda m: m.group() + "\n", markup)
    # Fragment parsing ignores <head>, so its <title> needs dropping by name.
    cleaned = nh3.clean(markup, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    return _LINE_BREAKS.sub("\n", _INLINE_WS.sub(" ", html.unescape(cleaned))).strip()


def extract_plain(kind: str, data: bytes, charset: str, limits: Limits) -> ExtractResult:
    """Text of a text/* or HTML attachment, never raising."""
    # Input beyond what could produce the allowed output is not read at all.
    limit = limits.max_text_chars
    window = limit * 4
    cut = data[:window]
    if kind == "html" and not valid_charset(charset):
        match = _META_CHARSET.search(cut[:2048])
        if match:
            charset = match.group(1).decode("ascii")
    try:
        text, problem = decode_text(cut, charset)
        if problem:
            return ExtractResult("", problem, kind)
        text = html_to_text(text) if kind == "html" else text.replace("\r\n", "\n")
    except Exception as exc:  # never raise to the caller
        return ExtractResult("", f"{kind}: unreadable ({type(exc).__name__}: {exc})"[:300], kind)
    sink = TextSink(limit)
    sink.add(text)
    truncated = sink.truncated or len(data) > len(cut)
    return ExtractResult(sink.text(), truncated_problem(limit) if truncated else None, kind)
