"""Sample documents for the extraction tests, built with the libraries that can write them.

PDF and RTF are written by hand; the zip bomb is a real deflate stream built block by
block, so that its gigabyte never exists in memory.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
GiB = 1024**3


# --- document builders ------------------------------------------------------------------


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Quarterly header line"
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Invoices"
    sheet.append(["Customer", "Amount"])
    sheet.append(["Zürich Kantonalbank", 1234.5])
    sheet["D40"] = "far away cell"
    second = workbook.create_sheet("Notes")
    second["A1"] = "=1+1"  # a formula without cached value: data_only gives None
    second["B2"] = "sparkling remark"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Roadmap slide title"
    slide.placeholders[1].text = "First bullet about archiving"
    rows = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    rows.cell(1, 1).text = "table cell mango"
    slide.notes_slide.notes_text_frame.text = "speaker notes kiwi"
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def make_odf(kind: str) -> bytes:
    from odf import table, text
    from odf.opendocument import (
        OpenDocumentPresentation,
        OpenDocumentSpreadsheet,
        OpenDocumentText,
    )

    if kind == "odt":
        document = OpenDocumentText()
        document.text.addElement(text.H(outlinelevel=1, text="Heading of the memo"))
        paragraph = text.P(text="Body paragraph with ")
        paragraph.addElement(text.Span(text="a span"))
        document.text.addElement(paragraph)
    elif kind == "ods":
        document = OpenDocumentSpreadsheet()
        sheet = table.Table(name="Sheet1")
        row = table.TableRow()
        cell = table.TableCell()
        cell.addElement(text.P(text="spreadsheet cell papaya"))
        row.addElement(cell)
        sheet.addElement(row)
        document.spreadsheet.addElement(sheet)
    else:
        from odf.draw import Frame, Page, TextBox
        from odf.style import MasterPage, PageLayout

        document = OpenDocumentPresentation()
        layout = PageLayout(name="layout")
        document.automaticstyles.addElement(layout)
        master = MasterPage(name="master", pagelayoutname=layout)
        document.masterstyles.addElement(master)
        page = Page(masterpagename=master)
        frame = Frame(width="10cm", height="2cm", x="1cm", y="1cm")
        box = TextBox()
        box.addElement(text.P(text="presentation line guava"))
        frame.addElement(box)
        page.addElement(frame)
        document.presentation.addElement(page)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text object per page, correct xref offsets."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = " ".join(f"({_pdf_string(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {ops} ET".encode("latin-1")
        bodies.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        bodies.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


RTF = (
    rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Arial;}}"
    rb"\f0\fs20 Contract draft \b bold clause\b0\par Caf\'e9 au lait\par}"
)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def write_zip(out: io.BytesIO, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """Write a ZIP of already deflated members: (name, deflated, crc, packed, unpacked)."""
    central = bytearray()
    for name, deflated, crc, packed, unpacked in members:
        offset = out.tell()
        raw_name = name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                packed,
                unpacked,
                len(raw_name),
                0,
            )
        )
        out.write(raw_name)
        out.write(deflated)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            packed,
            unpacked,
            len(raw_name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += raw_name
    start = out.tell()
    out.write(central)
    out.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0
        )
    )


def zeros_member(name: str, size: int) -> tuple[str, bytes, int, int, int]:
    """``size`` zero bytes deflated, built from one repeated 1 MiB block (never in memory)."""
    block_size = 1024 * 1024
    assert size % block_size == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(block_size)
    # After a full flush the compressor starts from scratch: every block encodes the same.
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    deflated = block * (size // block_size) + compressor.flush()
    crc = 0
    for _ in range(size // block_size):
        crc = zlib.crc32(zeros, crc)
    return name, deflated, crc, len(deflated), size


def small_member(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    deflated = _raw_deflate(data)
    return name, deflated, zlib.crc32(data), len(deflated), len(data)


CONTENT_TYPES_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
RELS_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)


def make_bomb_docx(size: int) -> bytes:
    out = io.BytesIO()
    write_zip(
        out,
        [
            small_member("[Content_Types].xml", CONTENT_TYPES_XML),
            small_member("_rels/.rels", RELS_XML),
            zeros_member("word/document.xml", size),
        ],
    )
    return out.getvalue()


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def make_raw_docx(document_xml: bytes, main: str = "word/document.xml") -> bytes:
    content_types = CONTENT_TYPES_XML.replace(b"/word/document.xml", b"/" + main.encode())
    rels = RELS_XML.replace(b"word/document.xml", main.encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr(main, document_xml)
    return out.getvalue()
