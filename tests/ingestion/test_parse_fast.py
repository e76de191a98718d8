"""The parser's fast paths give exactly what the email package gives on its own.

``parse_message(raw)`` splits plain header blocks itself, skips RFC 2047 decoding of
headers without encoded words and caches address parsing; ``parse_message(raw,
fast=False)`` leaves every step to the email package. Both must agree on every field,
for hand-made oddities and for the malformed mail of the shared corpus.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corpus import iter_files, message_root
from mailvault.ingestion.parse import (
    _WS,
    LARGE_MESSAGE,
    _plain_date,
    _plain_header_fields,
    header_text,
    parse_body_text,
    parse_message,
)
from mailvault.sources.files import ImportItem, iter_items

BODY = b"Hello,\r\nthe numbers are attached.\r\n"

CASES: dict[str, bytes] = {
    "plain crlf": (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com, Carol <c@example.org>\r\n"
        b"Subject: Numbers\r\nDate: Tue, 01 Oct 2024 10:00:00 +0200\r\n"
        b"Message-ID: <1@example.com>\r\n\r\n" + BODY
    ),
    "plain lf": b"From: alice@example.com\nSubject: lf only\n\nbody\n",
    "mixed line ends": (
        b"From: a@example.com\r\nSubject: mixed\n\tfolded\r\nTo: b@example.com\n\nx\n"
    ),
    "bare cr in header": b"From: a@example.com\rSubject: cr\r\n\r\nbody\r\n",
    "folded subject": b"Subject: one\r\n two\r\n\tthree\r\nFrom: a@b.example\r\n\r\nbody\r\n",
    "whitespace-only continuation": b"Subject: x\r\n \r\nFrom: a@b.example\r\n\r\nbody\r\n",
    "first line continuation": b" Subject: x\r\nFrom: a@b.example\r\n\r\nbody\r\n",
    "non-header line in block": (
        b"From: a@b.example\r\nthis is no header\r\nSubject: s\r\n\r\nb\r\n"
    ),
    "unix from line": b"From a@b.example Tue Oct  1 10:00:00 2024\nSubject: s\n\nbody\n",
    "misplaced envelope line": b"Subject: s\nFrom a@b Tue Oct  1 10:00:00 2024\nTo: x@y.z\n\nb\n",
    "empty header name": b": no name\r\nSubject: s\r\n\r\nbody\r\n",
    "empty values": b"Subject:\r\nFrom:\r\nTo: \r\n\r\nbody\r\n",
    "odd header names": b"X-Weird!#$%&'*+-.^_`|~: v\r\nSubject: s\r\n\r\nb\r\n",
    "duplicate headers": (
        b"Subject: first\r\nSubject: second\r\nFrom: a@x.example\r\nFrom: b@y.example\r\n"
        b"To: t@x.example\r\nTo: u@x.example\r\n\r\nbody\r\n"
    ),
    "8-bit utf-8 subject": (
        "Subject: Grüße aus Köln\r\nFrom: Jörg <j@x.example>\r\n\r\nb\r\n".encode()
    ),
    "8-bit latin-1 subject": "Subject: Grüße\r\nFrom: a@x.example\r\n\r\nb\r\n".encode("latin-1"),
    "encoded words": (
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= und =?iso-8859-1?b?S/Zsbg==?=\r\n"
        b"From: =?utf-8?b?SsO2cmc=?= <j@x.example>\r\n\r\nb\r\n"
    ),
    "broken encoded word": b"Subject: =?nosuchcharset?q?abc?= =?utf-8?b?###?=\r\n\r\nb\r\n",
    "list archive sender": b"From: ripley at stats.ox.ac.uk (Brian Ripley)\nSubject: Re: x\n\nb\n",
    "address forms": (
        b'To: "Doe, John" <jd@x.example>, undisclosed-recipients:;, (comment) z@x.example,\r\n'
        b" group: a@x.example, b@x.example;, <angle@x.example>, bare\r\n"
        b"Cc: Mixed@Case.Example, broken <unterminated@x.example\r\n\r\nb\r\n"
    ),
    "dates": b"Date: 1 Oct 2024 10:00 -1600\r\nSubject: d\r\n\r\nb\r\n",
    "bad date": b"Date: yesterday-ish\r\nSubject: d\r\n\r\nb\r\n",
    "no headers": b"\r\njust a body\r\n",
    "headers only": b"Subject: only headers\r\nFrom: a@x.example",
    "headers only with end": b"Subject: only headers\r\n\r\n",
    "html single part": (
        b"Content-Type: text/html; charset=utf-8\r\nSubject: h\r\n\r\n<p>Hi <b>there</b></p>\r\n"
    ),
    "base64 text": (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        b"Subject: b64\r\n\r\nR3LDvMOfZSBhdXMgS8O2bG4K\r\n"
    ),
    "quoted-printable unknown charset": (
        b"Content-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe=\r\n aus\r\n"
    ),
    "single-part attachment": (
        b"Content-Type: application/pdf; name=report.pdf\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?q?Ber=C3=A9cht?=.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    ),
    "rfc2231 filename": (
        b"Content-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.txt\r\n\r\nx\r\n"
    ),
    "multipart": (
        b'Content-Type: multipart/mixed; boundary="b1"\r\nSubject: mp\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
        b"--b1\r\nContent-Type: text/html\r\n\r\n<i>two</i>\r\n--b1--\r\n"
    ),
    "multipart without boundary": b"Content-Type: multipart/mixed\r\n\r\nbody\r\n",
    "message/rfc822": (
        b"Content-Type: message/rfc822\r\nSubject: outer\r\n\r\n"
        b"Subject: inner\r\nFrom: i@x.example\r\n\r\ninner body\r\n"
    ),
    "content-type without slash": b"Content-Type: text\r\nSubject: s\r\n\r\nbody\r\n",
    "nul and control bytes": b"Subject: a\x00b\x07c\r\nFrom: a@x.example\r\n\r\n\x00\x01\r\n",
    "8-bit body": "Subject: s\r\n\r\nGrüße, naïve café\r\n".encode(),
    "garbage": b"\x00\xff\xfe garbage without any header\r\n" * 5,
    "empty": b"",
}


@pytest.mark.parametrize("raw", list(CASES.values()), ids=list(CASES))
def test_fast_parse_equals_the_email_package(raw: bytes) -> None:
    assert parse_message(raw) == parse_message(raw, fast=False)


@pytest.mark.parametrize("raw", list(CASES.values()), ids=list(CASES))
def test_body_text_alone_equals_the_full_parse(raw: bytes) -> None:
    assert parse_body_text(raw) == parse_message(raw).body_text


def test_body_text_alone_of_a_message_with_attachments_and_a_huge_part() -> None:
    huge = b"QUJD" * (LARGE_MESSAGE // 3)  # base64 past the large-message bound
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\nFrom: a@x.example\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nthe body\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;"
        b' filename="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + huge
        + b"\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>and more</p>\r\n--b--\r\n"
    )
    full = parse_message(raw)
    assert full.attachment_names == ["r.pdf"]
    assert "the body" in full.body_text and "and more" in full.body_text
    assert parse_body_text(raw) == full.body_text


def test_fast_paths_are_taken_for_plain_header_blocks_only() -> None:
    head = CASES["plain crlf"].split(b"\r\n\r\n", 1)[0]
    fields = _plain_header_fields(head)
    assert fields is not None
    assert fields[0] == ("From", "Alice <alice@example.com>")
    assert _plain_header_fields(b"Subject: one\r\n two\r\n\tthree") == [
        ("Subject", "one\r\n two\r\n\tthree")
    ]
    for name in (
        "bare cr in header",
        "first line continuation",
        "non-header line in block",
        "unix from line",
        "misplaced envelope line",
        "empty header name",
        "8-bit utf-8 subject",
    ):
        raw = CASES[name]
        end = min(i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0)
        assert _plain_header_fields(raw[:end]) is None, name


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
@example(" a\xa0 b\u2003c\x1cd\x85e\u2028f\tg\r\n h ")
@example("\u3000word\u3000")
def test_header_text_folds_whitespace_like_the_regular_expression(text: str) -> None:
    # Unicode spaces, tabs, line ends, control characters: the shortcut must not differ.
    value = text.replace("=?", "")
    assert header_text(value) == _WS.sub(" ", value).strip()


_DAY_NAMES = ("", "Mon, ", "Tue, ", "Sun, ", "Tue,", "tue, ")
_MONTHS = ("Jan", "Feb", "Apr", "Sep", "Dec", "jan", "Foo")


@given(
    st.sampled_from(_DAY_NAMES),
    st.integers(0, 40),
    st.sampled_from(_MONTHS),
    st.integers(0, 10_000),
    st.integers(0, 26),
    st.integers(0, 61),
    st.one_of(st.none(), st.integers(0, 61)),
    st.sampled_from(("+", "-")),
    st.integers(0, 9999),
    st.sampled_from(("", " (CEST)", " (MET DST)", " ()", "  ", " EST")),
)
@example("Tue, ", 1, "Apr", 2003, 0, 6, 38, "-", 0, " (GMT)")  # "-0000": no zone
@example("", 29, "Feb", 2001, 10, 0, None, "+", 2400, "")  # no such day; offset of a day
def test_plain_dates_are_read_as_the_email_package_reads_them(
    day_name: str,
    day: int,
    month: str,
    year: int,
    hour: int,
    minute: int,
    second: int | None,
    sign: str,
    zone: int,
    tail: str,
) -> None:
    seconds = "" if second is None else f":{second:02d}"
    value = f"{day_name}{day} {month} {year:04d} {hour:02d}:{minute:02d}{seconds} {sign}{zone:04d}"
    value += tail
    fast = _plain_date(value)
    if fast is None:
        return  # left to the email package
    slow = parsedate_to_datetime(value)
    assert (fast, fast.utcoffset()) == (slow, slow.utcoffset()), value


def test_cached_addresses_are_not_shared_between_results() -> None:
    raw = CASES["plain crlf"]
    first = parse_message(raw)
    first.to.append("mutated@example.com")
    assert parse_message(raw).to == ["bob@example.com", "c@example.org"]


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["tricky-mime", "spamassassin"])
def test_fast_parse_equals_the_email_package_on_the_corpus(name: str) -> None:
    root = message_root(name)
    raws: list[tuple[str, bytes]] = [(str(p), p.read_bytes()) for p in iter_files(root)]
    # The same files as the importer reads them (MBOX split, "From " lines removed, …).
    raws += [
        (item.source_ref, item.raw)
        for item in iter_items(Path(root), allowed_roots=None)
        if isinstance(item, ImportItem)
    ]
    assert len(raws) > 500
    differ = [where for where, raw in raws if parse_message(raw) != parse_message(raw, fast=False)]
    assert differ == []
    bodies_differ = [
        where for where, raw in raws if parse_body_text(raw) != parse_message(raw).body_text
    ]
    assert bodies_differ == []
