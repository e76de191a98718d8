"""Attachment text extraction: every format, mislabelled and corrupt input, hostile files.

The documents come from ``extract_samples`` (generated with python-docx, openpyxl,
python-pptx and odfpy; PDF, RTF and a real 1 GiB zip bomb written by hand).
"""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile
from collections.abc import Iterator

import pytest
from extract_samples import (
    CONTENT_TYPES_XML,
    DOCX_TYPE,
    MC_NS,
    PPTX_TYPE,
    RTF,
    W_NS,
    XLSX_TYPE,
    GiB,
    make_bomb_docx,
    make_docx,
    make_odf,
    make_pdf,
    make_pptx,
    make_raw_docx,
    make_xlsx,
)

from mailvault.ingestion.extract import (
    Extractor,
    ExtractResult,
    Limits,
    TextSink,
    extract_text,
)
from mailvault.ingestion.extract import close_default_extractor as _close_default
from mailvault.ingestion.extract.text import decode_text

# --- test-only formats run in the pool ----------------------------------------------------


def _sleepy(data: bytes, sink: TextSink) -> None:
    time.sleep(60)


def _crashing(data: bytes, sink: TextSink) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _hungry(data: bytes, sink: TextSink) -> None:
    hog = bytearray(3 * GiB)  # beyond the worker's address-space limit
    sink.add(str(len(hog)))


def _echo(data: bytes, sink: TextSink) -> None:
    sink.add(f"echo pid={os.getpid()} {data.decode()}")


TEST_HANDLERS = {
    "application/x-test-sleep": _sleepy,
    "application/x-test-crash": _crashing,
    "application/x-test-hungry": _hungry,
    "application/x-test-echo": _echo,
}


@pytest.fixture(scope="module")
def extractor() -> Iterator[Extractor]:
    with Extractor(
        workers=2, limits=Limits(memory_bytes=512 * 1024 * 1024), handlers=TEST_HANDLERS
    ) as ext:
        yield ext


def _gone(pid: int) -> bool:
    """The process has exited and was reaped (a zombie still has a /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


def _echo_pid(extractor: Extractor) -> ExtractResult:
    result = extractor.extract("x", "application/x-test-echo", b"still alive")
    assert result.problem is None
    assert "still alive" in result.text
    return result


# --- every format -----------------------------------------------------------------------


def test_docx_paragraphs_tables_and_header(extractor: Extractor) -> None:
    data = make_docx(
        ["Minutes of the board meeting", "Second paragraph"],
        table=[["Name", "Role"], ["Ada", "Chair"]],
    )
    result = extractor.extract("minutes.docx", DOCX_TYPE, data)
    assert result.problem is None
    assert result.kind == "docx"
    for expected in (
        "Minutes of the board meeting",
        "Second paragraph",
        "Ada",
        "Chair",
        "Quarterly header line",
    ):
        assert expected in result.text


def test_xlsx_cells_of_every_sheet(extractor: Extractor) -> None:
    result = extractor.extract("invoices.xlsx", XLSX_TYPE, make_xlsx())
    assert result.problem is None, result.problem
    assert result.kind == "xlsx"
    for expected in (
        "Invoices",
        "Customer\tAmount",
        "Zürich Kantonalbank",
        "1234.5",
        "far away cell",
        "Notes",
        "sparkling remark",
    ):
        assert expected.replace("\t", " ") in result.text.replace("\t", " ")


def test_pptx_shapes_tables_and_notes(extractor: Extractor) -> None:
    result = extractor.extract("deck.pptx", PPTX_TYPE, make_pptx())
    assert result.problem is None, result.problem
    assert result.kind == "pptx"
    for expected in (
        "Roadmap slide title",
        "First bullet about archiving",
        "table cell mango",
        "speaker notes kiwi",
    ):
        assert expected in result.text


@pytest.mark.parametrize(
    ("kind", "content_type", "expected"),
    [
        ("odt", "application/vnd.oasis.opendocument.text", "Body paragraph with a span"),
        ("ods", "application/vnd.oasis.opendocument.spreadsheet", "spreadsheet cell papaya"),
        ("odp", "application/vnd.oasis.opendocument.presentation", "presentation line guava"),
    ],
)
def test_opendocument(extractor: Extractor, kind: str, content_type: str, expected: str) -> None:
    result = extractor.extract(f"file.{kind}", content_type, make_odf(kind))
    assert result.problem is None, result.problem
    assert result.kind == kind
    assert expected in result.text
    if kind == "odt":
        assert result.text.index("Heading of the memo") < result.text.index(expected)


def test_pdf_text_of_every_page(extractor: Extractor) -> None:
    data = make_pdf([["Invoice number 4711", "Total (EUR) 99"], ["Second page text"]])
    result = extractor.extract("invoice.pdf", "application/pdf", data)
    assert result.problem is None, result.problem
    assert result.kind == "pdf"
    assert "Invoice number 4711" in result.text
    assert "Total (EUR) 99" in result.text
    assert "Second page text" in result.text


def test_encrypted_pdf_is_reported(extractor: Extractor) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf([["secret words"]]))).pages:
        writer.add_page(page)
    writer.encrypt("a-password", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    result = extractor.extract("locked.pdf", "application/pdf", out.getvalue())
    assert result.text == ""
    assert result.problem is not None
    assert "encrypted PDF" in result.problem


def test_rtf(extractor: Extractor) -> None:
    result = extractor.extract("contract.rtf", "application/rtf", RTF)
    assert result.problem is None, result.problem
    assert "Contract draft bold clause" in result.text
    assert "Café au lait" in result.text
    assert "fonttbl" not in result.text and "Arial" not in result.text


# --- plain text and HTML (in-process fast path) ---------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        ("Grüße aus Köln".encode(), "text/plain", "Grüße aus Köln"),
        ("Preis: 10 € — günstig".encode("cp1252"), "text/plain", "Preis: 10 € — günstig"),
        # 0x81 is undefined in cp1252: latin-1 is the last resort and never fails
        (b"caf\xe9 \x81", "text/plain", "café \x81"),
        ("Łódź".encode("iso-8859-2"), "text/plain; charset=ISO-8859-2", "Łódź"),
        ("utf-16 with BOM ✓".encode("utf-16"), "text/plain", "utf-16 with BOM ✓"),
        (b"a,b\r\n1,2\r\n", "text/csv", "a,b\n1,2"),
        (
            "valid UTF-8 labelled latin-1: é".encode(),
            "text/plain; charset=iso-8859-1",
            "valid UTF-8 labelled latin-1: é",
        ),
    ],
)
def test_plain_text_charsets(data: bytes, content_type: str, expected: str) -> None:
    with Extractor(workers=1) as ext:
        result = ext.extract("note.txt", content_type, data)
        assert result.problem is None
        assert result.kind == "text"
        assert result.text == expected
        assert ext.worker_pids() == []  # the fast path never starts a worker


def test_text_by_extension_when_type_is_generic(extractor: Extractor) -> None:
    for name in ("server.log", "readme.md", "data.csv", "notes.txt"):
        result = extractor.extract(name, "application/octet-stream", b"line one\nline two")
        assert (result.kind, result.text) == ("text", "line one\nline two"), name


def test_html_tags_scripts_and_entities(extractor: Extractor) -> None:
    markup = (
        b"<html><head><title>hidden title</title><style>p{color:red}</style></head>"
        b"<body><p>Hello&nbsp;<b>world</b> &amp; friends</p><script>alert(1)</script>"
        b"<p>caf\xe9</p></body></html>"
    )
    result = extractor.extract("page.html", "text/html; charset=iso-8859-1", markup)
    assert result.problem is None
    assert result.kind == "html"
    assert "Hello world & friends" in result.text
    assert "café" in result.text
    for hidden in ("alert", "color:red", "hidden title", "<p>"):
        assert hidden not in result.text


def test_binary_labelled_text_is_a_problem(extractor: Extractor) -> None:
    result = extractor.extract("x.txt", "text/plain", b"\x00\x01\x02\xff" * 100)
    assert result.text == ""
    assert result.problem == "binary content, not text"


def test_decode_text_utf16_without_bom() -> None:
    assert decode_text("plain words".encode("utf-16-le")) == ("plain words", None)


# --- mislabelled input -------------------------------------------------------------------


def test_mislabelled_content_is_detected_by_magic(extractor: Extractor) -> None:
    pdf = make_pdf([["magic wins"]])
    docx_data = make_docx(["docx in disguise"])
    results = extractor.extract_many(
        [
            ("scan.bin", "application/octet-stream", pdf),
            ("readme.txt", "text/plain", pdf),
            ("report.xlsx", XLSX_TYPE, docx_data),  # a DOCX labelled XLSX
            ("noname", "", docx_data),
            ("page.html", "text/html", docx_data),
        ]
    )
    assert [r.kind for r in results] == ["pdf", "pdf", "docx", "docx", "docx"]
    assert all(r.problem is None for r in results), [r.problem for r in results]
    assert "magic wins" in results[0].text and "magic wins" in results[1].text
    assert all("docx in disguise" in r.text for r in results[2:])


def test_declared_binary_format_that_is_not(extractor: Extractor) -> None:
    results = extractor.extract_many(
        [
            ("a.pdf", "application/pdf", b"just some text, not a PDF"),
            ("b.docx", DOCX_TYPE, b"plain text named docx"),
            ("c.rtf", "application/rtf", b"no rtf header"),
        ]
    )
    assert [r.problem for r in results] == [
        "not a PDF file (no %PDF- header)",
        "not a DOCX file (not a ZIP archive)",
        "not an RTF file (no {\\rtf header)",
    ]
    assert all(r.text == "" for r in results)


def test_unsupported_formats_say_so(extractor: Extractor) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("photo-list.txt", "hello")
    results = extractor.extract_many(
        [
            ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(100)),
            ("old.doc", "application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100)),
            ("files.zip", "application/zip", zipped.getvalue()),
            ("blob.bin", "application/octet-stream", bytes(range(256))),
        ]
    )
    assert all(r.text == "" for r in results)
    problems = [r.problem or "" for r in results]
    assert problems[0].startswith("unsupported format (PNG image")
    assert problems[1].startswith("unsupported format (legacy Microsoft Office binary")
    assert problems[2] == "unsupported format (ZIP archive, not an office document)"
    assert problems[3] == "unsupported format (application/octet-stream, .bin)"


# --- corrupt input -----------------------------------------------------------------------


def test_corrupt_files_give_a_problem_not_an_exception(extractor: Extractor) -> None:
    docx_data = make_docx(["will be cut"])
    xlsx_data = make_xlsx()
    pdf = make_pdf([["cut pdf"]])
    empty_zip = io.BytesIO()
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES_XML)  # no document part
    items = [
        ("cut.docx", DOCX_TYPE, docx_data[: len(docx_data) // 2]),
        ("cut.xlsx", XLSX_TYPE, xlsx_data[:300]),
        ("garbage.pdf", "application/pdf", b"%PDF-1.7\n" + os.urandom(5000)),
        ("cut.pdf", "application/pdf", pdf[:40]),
        ("hollow.docx", DOCX_TYPE, empty_zip.getvalue()),
        ("broken.odt", "application/vnd.oasis.opendocument.text", b"PK\x03\x04broken"),
        ("bad.rtf", "application/rtf", b"{\\rtf1 \\" + os.urandom(200)),
    ]
    results = extractor.extract_many(items)
    for (name, _, _), result in zip(items, results, strict=True):
        assert isinstance(result, ExtractResult)
        if name == "bad.rtf":  # RTF is forgiving: garbage in, some text out
            continue
        assert result.text == "", name
        assert result.problem, name
    assert "corrupt" in (results[0].problem or "")
    _echo_pid(extractor)  # the pool survived all of it


# --- hostile input: bombs, endless loops, crashes, memory ------------------------------


def test_zip_bomb_docx_is_refused_quickly(extractor: Extractor) -> None:
    bomb = make_bomb_docx(GiB)
    assert len(bomb) < 2 * 1024 * 1024  # ~1 MiB on the wire, 1 GiB unpacked
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:  # a real, valid archive
        assert archive.getinfo("word/document.xml").file_size == GiB
        with archive.open("word/document.xml") as member:
            assert member.read(4096) == bytes(4096)
    started = time.monotonic()
    result = extractor.extract("bomb.docx", DOCX_TYPE, bomb)
    elapsed = time.monotonic() - started
    assert result.text == ""
    assert result.problem is not None and result.problem.startswith("zip bomb refused")
    assert elapsed < 5.0  # the guard reads the ZIP directory only


def test_zip_bomb_below_total_limit_is_refused_by_ratio(extractor: Extractor) -> None:
    result = extractor.extract(
        "ratio.docx", "application/octet-stream", make_bomb_docx(64 * 1024 * 1024)
    )
    assert result.problem is not None
    assert "zip bomb refused" in result.problem and "expands" in result.problem


def test_timeout_kills_the_worker_and_the_pool_goes_on(extractor: Extractor) -> None:
    _echo_pid(extractor)
    before = set(extractor.worker_pids())
    started = time.monotonic()
    result = extractor.extract("slow", "application/x-test-sleep", b"", timeout_s=1.0)
    # empty data short-cuts before any handler; send one byte so the handler runs
    assert result == ExtractResult("", None)
    result = extractor.extract("slow", "application/x-test-sleep", b"z", timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert result.text == ""
    assert result.problem is not None and "timed out after 1 s" in result.problem
    assert elapsed < 5.0
    killed = before - set(extractor.worker_pids())
    assert len(killed) == 1
    assert all(_gone(pid) for pid in killed)
    for _ in range(3):
        _echo_pid(extractor)
    assert "Minutes" in extractor.extract("m.docx", DOCX_TYPE, make_docx(["Minutes"])).text


def test_one_slow_attachment_does_not_hold_up_the_others(extractor: Extractor) -> None:
    pdf = make_pdf([["parallel page"]])
    started = time.monotonic()
    results = extractor.extract_many(
        [("slow", "application/x-test-sleep", b"z")] + [("p.pdf", "application/pdf", pdf)] * 6,
        timeout_s=2.0,
    )
    assert time.monotonic() - started < 6.0
    assert "timed out" in (results[0].problem or "")
    assert all(r.problem is None and "parallel page" in r.text for r in results[1:])


def test_crash_in_a_worker_is_a_problem_and_the_worker_is_replaced(
    extractor: Extractor,
) -> None:
    result = extractor.extract("boom", "application/x-test-crash", b"z")
    assert result.text == ""
    assert result.problem is not None
    assert "extractor crashed (killed by SIGSEGV)" in result.problem
    _echo_pid(extractor)


def test_memory_limit_in_the_worker(extractor: Extractor) -> None:
    result = extractor.extract("hog", "application/x-test-hungry", b"z")
    assert result.text == ""
    assert result.problem is not None and "out of memory (limit 512 MiB)" in result.problem
    _echo_pid(extractor)


# --- size limits --------------------------------------------------------------------------


def test_input_size_limit() -> None:
    limits = Limits(max_input_bytes=10_000)
    with Extractor(workers=1, limits=limits) as ext:
        big = ext.extract("big.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(20_000))
        assert big.text == ""
        assert big.problem is not None and big.problem.startswith("too large")
        small = ext.extract("small.txt", "text/plain", b"x" * 10_000)
        assert small.problem is None and len(small.text) == 10_000
        assert ext.worker_pids() == []  # refused before any worker was needed


def test_output_text_limit_plain_and_pooled() -> None:
    limits = Limits(max_text_chars=1000)
    with Extractor(workers=1, limits=limits) as ext:
        text = ext.extract("long.txt", "text/plain", b"word " * 10_000)
        assert len(text.text) == 1000
        assert text.problem == "text truncated at 1000 characters"
        html = ext.extract("long.html", "text/html", b"<p>word</p>" * 10_000)
        assert len(html.text) == 1000
        assert html.problem == "text truncated at 1000 characters"
        docx_data = make_docx([f"paragraph number {i}" for i in range(500)])
        docx_result = ext.extract("long.docx", DOCX_TYPE, docx_data)
        assert 900 < len(docx_result.text) <= 1000
        assert docx_result.text.startswith("paragraph number 0\nparagraph number 1\n")
        assert docx_result.problem == "text truncated at 1000 characters"
        short = ext.extract("short.docx", DOCX_TYPE, make_docx(["short"]))
        assert short.problem is None


# --- lifecycle ----------------------------------------------------------------------------


def test_close_reaps_every_worker() -> None:
    ext = Extractor(workers=2)
    pdf = make_pdf([["lifecycle"]])
    results = ext.extract_many([("a.pdf", "application/pdf", pdf)] * 4)
    assert all("lifecycle" in r.text for r in results)
    pids = ext.worker_pids()
    assert len(pids) == 2
    ext.close()
    assert all(_gone(pid) for pid in pids)
    closed = ext.extract("a.pdf", "application/pdf", pdf)
    assert closed.text == "" and "closed" in (closed.problem or "")


def test_workers_are_recycled_after_max_tasks() -> None:
    with Extractor(workers=1, limits=Limits(max_tasks_per_worker=2), handlers=TEST_HANDLERS) as ext:
        pids = {_echo_pid(ext).text.split()[1] for _ in range(6)}
        assert len(pids) == 3


def test_extract_text_default_pool() -> None:
    try:
        result = extract_text("minutes.docx", DOCX_TYPE, make_docx(["default pool text"]))
        assert result.problem is None
        assert "default pool text" in result.text
        assert extract_text("n.txt", "text/plain", b"hi") == ExtractResult("hi", None, "text")
    finally:
        _close_default()


# --- hand-written OOXML edge cases and pathological PDFs ----------------------------------


def test_docx_alternate_content_counted_once_and_main_part_found_by_relationship(
    extractor: Extractor,
) -> None:
    body = (
        f'<w:document xmlns:w="{W_NS}" xmlns:mc="{MC_NS}"><w:body>'
        "<w:p><w:r><w:t>before </w:t></w:r><w:r><w:tab/><w:t>tabbed</w:t></w:r></w:p>"
        "<w:p><mc:AlternateContent><mc:Choice Requires='wps'>"
        "<w:p><w:r><w:t>textbox lychee</w:t></w:r></w:p></mc:Choice>"
        "<mc:Fallback><w:p><w:r><w:t>textbox lychee</w:t></w:r></w:p></mc:Fallback>"
        "</mc:AlternateContent></w:p>"
        "</w:body></w:document>"
    ).encode()
    data = make_raw_docx(body, main="word/document2.xml")
    result = extractor.extract("odd.docx", DOCX_TYPE, data)
    assert result.problem is None, result.problem
    assert result.text.count("textbox lychee") == 1
    assert "before tabbed" in result.text


def test_docx_entities_are_not_expanded(extractor: Extractor) -> None:
    entities = '<!ENTITY a "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA">'
    for level in range(1, 10):  # "billion laughs": 64 * 10**9 characters if expanded
        entities += f'<!ENTITY {"a" * (level + 1)} "{("&" + "a" * level + ";") * 10}">'
    body = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>laugh &aaaaaaaaaa; end</w:t>'
        "</w:r></w:p></w:body></w:document>"
    ).encode()
    started = time.monotonic()
    result = extractor.extract("laughs.docx", DOCX_TYPE, make_raw_docx(body))
    assert time.monotonic() - started < 5.0
    # libxml2 refuses the amplification outright (and lxml is told never to expand).
    assert result.text == ""
    assert result.problem is not None and result.problem.startswith("DOCX: corrupt")
    assert "amplification" in result.problem


def test_pdf_with_cyclic_page_tree(extractor: Extractor) -> None:
    pdf = make_pdf([["cyclic"]]).replace(b"/Kids [4 0 R]", b"/Kids [2 0 R]")
    result = extractor.extract("cycle.pdf", "application/pdf", pdf, timeout_s=5.0)
    assert result.text == ""
    assert result.problem is not None and result.problem.startswith("PDF: corrupt")


def test_pathological_pdf_is_cut_off_by_the_time_limit(extractor: Extractor) -> None:
    """A 1 MB page of 100,000 text operations keeps pypdf busy far beyond one second."""
    pdf = make_pdf([["x"] * 100_000])
    started = time.monotonic()
    result = extractor.extract("slow.pdf", "application/pdf", pdf, timeout_s=1.0)
    assert time.monotonic() - started < 4.0
    assert result == ExtractResult("", "PDF: timed out after 1 s", "pdf")
    assert (
        "still works"
        in extractor.extract("p.pdf", "application/pdf", make_pdf([["still works"]])).text
    )


def test_concurrent_callers_share_the_pool() -> None:
    import threading

    with Extractor(workers=2, handlers=TEST_HANDLERS).start() as ext:
        assert len(ext.worker_pids()) == 2
        results: list[ExtractResult] = []
        lock = threading.Lock()

        def call(n: int) -> None:
            for i in range(5):
                r = ext.extract("e", "application/x-test-echo", f"call {n}-{i}".encode())
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(results) == 20
        assert all(r.problem is None for r in results)
        texts = {r.text.split(" ", 2)[2] for r in results}
        assert texts == {f"call {n}-{i}" for n in range(4) for i in range(5)}
        assert len(ext.worker_pids()) == 2


def test_big_text_and_html_go_to_the_workers() -> None:
    with Extractor(workers=1, limits=Limits(inline_max_bytes=1000)) as ext:
        small = ext.extract("s.html", "text/html", b"<p>tiny</p>")
        assert small.text == "tiny"
        assert ext.worker_pids() == []
        markup = b"<p>caf\xe9 au lait</p><script>hidden()</script>" * 200
        big = ext.extract("b.html", "text/html; charset=latin-1", markup)
        assert big.problem is None and big.kind == "html"
        assert big.text.split("\n") == ["café au lait"] * 200
        text = ext.extract("b.txt", "text/plain", "Grüße\n".encode() * 500)
        assert text.problem is None and text.text == ("Grüße\n" * 500).strip()
        assert len(ext.worker_pids()) == 1


def test_worker_that_cannot_even_receive_the_bytes() -> None:
    """Dying while reading the attachment: one retry on a fresh worker, then a problem."""
    limits = Limits(memory_bytes=128 * 1024 * 1024, max_input_bytes=GiB)
    with Extractor(workers=1, limits=limits, handlers=TEST_HANDLERS) as ext:
        result = ext.extract("big", "application/x-test-echo", bytes(256 * 1024 * 1024))
        assert result.text == ""
        assert result.problem == (
            "APPLICATION/X-TEST-ECHO: extractor crashed (out of memory receiving the attachment)"
        )
        _echo_pid(ext)
