"""The heavy formats: PDF, DOCX, XLSX, PPTX, ODF and RTF. Run inside a worker process.

Every function feeds a :class:`TextSink` and stops as soon as it is full (DOCX and PPTX
are streamed by :mod:`.ooxml`). Zip-based
formats pass :func:`open_zip_checked` first, which refuses zip bombs from the ZIP
directory alone (Python's zipfile never inflates a member past its declared size, so
the declared sizes bound what the libraries can unpack).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

from mailvault.ingestion.extract import ooxml
from mailvault.ingestion.extract.types import Limits, MiB, Refused, TextSink


def prewarm() -> None:
    """Import the libraries once in a fresh worker, so the first attachment is not slower."""
    import lxml.etree  # noqa: F401
    import odf.opendocument  # noqa: F401
    import openpyxl  # noqa: F401
    import pypdf  # noqa: F401
    import striprtf.striprtf  # noqa: F401


# --- ZIP ------------------------------------------------------------------------------


def open_zip_checked(data: bytes, limits: Limits) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise Refused(f"corrupt ZIP container ({exc})") from exc
    members = archive.infolist()
    if len(members) > limits.zip_max_members:
        raise Refused(f"zip bomb refused: {len(members)} members")
    total = sum(m.file_size for m in members)
    if total > limits.zip_max_unpacked_bytes:
        raise Refused(
            f"zip bomb refused: {total // MiB} MiB uncompressed "
            f"(limit {limits.zip_max_unpacked_bytes // MiB} MiB)"
        )
    for member in members:
        if member.file_size > MiB and member.file_size > limits.zip_max_ratio * max(
            member.compress_size, 1
        ):
            raise Refused(
                f"zip bomb refused: {member.filename[:100]!r} expands "
                f"{member.file_size // max(member.compress_size, 1)} times"
            )
    return archive


def _read_member(archive: zipfile.ZipFile, name: str, limit: int = MiB) -> bytes:
    try:
        with archive.open(name) as member:
            return member.read(limit)
    except KeyError:
        return b""


def zip_kind(archive: zipfile.ZipFile, hint: str) -> str:
    """The office format of a ZIP from its members; ``hint`` (the declared one) breaks ties."""
    names = set(archive.namelist())
    if "[Content_Types].xml" in names:
        types = _read_member(archive, "[Content_Types].xml").lower()
        for kind, markers in (
            (
                "docx",
                (
                    b"wordprocessingml.document.main",
                    b"wordprocessingml.template.main",
                    b"ms-word.document.macroenabled",
                    b"ms-word.template.macroenabled",
                ),
            ),
            (
                "xlsx",
                (
                    b"spreadsheetml.sheet.main",
                    b"spreadsheetml.template.main",
                    b"ms-excel.sheet.macroenabled",
                    b"ms-excel.template.macroenabled",
                ),
            ),
            (
                "pptx",
                (
                    b"presentationml.presentation.main",
                    b"presentationml.slideshow.main",
                    b"presentationml.template.main",
                    b"ms-powerpoint.",
                ),
            ),
        ):
            if any(marker in types for marker in markers):
                return kind
    if "mimetype" in names:
        mimetype = _read_member(archive, "mimetype", 200).decode("ascii", "replace").strip()
        if mimetype.startswith("application/vnd.oasis.opendocument."):
            return {"text": "odt", "spreadsheet": "ods", "presentation": "odp"}.get(
                mimetype.rsplit(".", 1)[-1].split("-")[0], "odt"
            )
    if hint and hint != "zip":
        raise Refused(f"not a valid {hint.upper()} file (office document parts missing)")
    raise Refused("unsupported format (ZIP archive, not an office document)")


# --- XLSX and ODF ----------------------------------------------------------------------


def xlsx_text(data: bytes, sink: TextSink) -> None:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            if not sink.add(sheet.title):
                return
            sheet.reset_dimensions()  # never trust (or pad to) the declared dimension
            for row in sheet.iter_rows(values_only=True):
                cells = [str(value) for value in row if value is not None and value != ""]
                if cells and not sink.add("\t".join(cells)):
                    return
    finally:
        workbook.close()


def odf_text(data: bytes, sink: TextSink) -> None:
    from odf import teletype
    from odf.namespaces import TEXTNS
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    blocks = {(TEXTNS, "p"), (TEXTNS, "h")}
    stack: list[Any] = [document.body]
    while stack:  # iterative depth-first walk: hostile nesting cannot overflow the stack
        node = stack.pop()
        if getattr(node, "qname", None) in blocks:
            if not sink.add(teletype.extractText(node)):
                return
            continue
        stack.extend(reversed(getattr(node, "childNodes", ())))


# --- PDF and RTF ------------------------------------------------------------------------


def pdf_text(data: bytes, sink: TextSink) -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise Refused(f"encrypted PDF ({exc})") from exc
        if not opened:
            raise Refused("encrypted PDF (password required)")
    for page in reader.pages:
        if not sink.add(page.extract_text()):
            return


def rtf_text(data: bytes, sink: TextSink) -> None:
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit with escapes; latin-1 maps stray 8-bit bytes one to one.
    sink.add(rtf_to_text(data.decode("latin-1"), errors="ignore"))


# Formats read from the already opened (and checked) ZIP.
ZIP_HANDLERS: dict[str, Callable[[zipfile.ZipFile, TextSink], None]] = {
    "docx": ooxml.docx_text,
    "pptx": ooxml.pptx_text,
}
HANDLERS: dict[str, Callable[[bytes, TextSink], None]] = {
    "pdf": pdf_text,
    "xlsx": xlsx_text,
    "odt": odf_text,
    "ods": odf_text,
    "odp": odf_text,
    "rtf": rtf_text,
}


def run(hint: str, data: bytes, limits: Limits, sink: TextSink) -> None:
    """Extract ``data`` of format ``sink.kind`` into ``sink`` (which learns the real format)."""
    if sink.kind == "zip":
        with open_zip_checked(data, limits) as archive:
            sink.kind = zip_kind(archive, hint)
            if sink.kind in ZIP_HANDLERS:
                ZIP_HANDLERS[sink.kind](archive, sink)
                return
    HANDLERS[sink.kind](data, sink)
