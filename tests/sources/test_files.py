"""File import readers: EML, MBOX, maildir, PST/OST, MSG, ZIP, and the safety rules."""

from __future__ import annotations

import email
import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from mailvault.sources.files import (
    ImportItem,
    ImportProblem,
    ImportRefused,
    estimate_total,
    iter_items,
)
from mailvault.sources.files import mbox as mbox_module
from mailvault.sources.files.mbox import read_mbox

MSG1 = b"From: a@example.com\nSubject: one\nMessage-ID: <1@x>\n\nbody one\n"
MSG2 = b"From: b@example.com\nSubject: two\n\nFrom the results above, we see\n>From quoted\n"
MSG3 = b"From: c@example.com\r\nSubject: three\r\n\r\nbody three\r\n"


def items(path: Path, **kw: object) -> list[ImportItem | ImportProblem]:
    kw.setdefault("allowed_roots", None)
    return list(iter_items(path, **kw))  # type: ignore[arg-type]


def only_items(events: list[ImportItem | ImportProblem]) -> list[ImportItem]:
    return [e for e in events if isinstance(e, ImportItem)]


def write_mbox(path: Path) -> Path:
    path.write_bytes(
        b"From a@example.com Tue Apr  1 00:06:38 2003\n" + MSG1 + b"\n"
        b"From b at example.com  Wed Apr  2 10:00:00 2003\n" + MSG2 + b"\n"
        b"From - Sat Jan 03 12:00:00 2009\r\n" + MSG3 + b"\r\n"
    )
    return path


# --- EML -------------------------------------------------------------------------------


def test_eml_file_is_one_item_with_exact_bytes(tmp_path: Path) -> None:
    raw = b"From x@y Tue Apr  1 00:06:38 2003\n" + MSG1  # a leading From line is kept
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    [ev] = items(path)
    assert ev == ImportItem(folder_path="", raw=raw, source_ref="eml:m.eml")


def test_empty_eml_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "e.eml").write_bytes(b"")
    [ev] = items(tmp_path / "e.eml")
    assert isinstance(ev, ImportProblem) and ev.reason == "empty file"


def test_directory_keeps_folder_structure_and_skips_non_mail(tmp_path: Path) -> None:
    (tmp_path / "Inbox" / "Sub").mkdir(parents=True)
    (tmp_path / "top.eml").write_bytes(MSG1)
    (tmp_path / "Inbox" / "b.eml").write_bytes(MSG2)
    (tmp_path / "Inbox" / "Sub" / "1.").write_bytes(MSG3)  # CMU Enron layout: no extension
    (tmp_path / "Inbox" / "notes.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / ".hidden.eml").write_bytes(MSG1)
    events = items(tmp_path)
    got = [(e.folder_path, e.raw, e.source_ref) for e in only_items(events)]
    assert got == [
        ("", MSG1, "eml:top.eml"),
        ("Inbox", MSG2, "eml:Inbox/b.eml"),
        ("Inbox/Sub", MSG3, "eml:Inbox/Sub/1."),
    ]
    problems = [e for e in events if isinstance(e, ImportProblem)]
    assert [p.source_ref for p in problems] == ["file:Inbox/notes.png"]
    assert estimate_total(tmp_path) == 3


# --- MBOX ------------------------------------------------------------------------------


def test_mbox_splits_on_from_lines_and_keeps_bytes(tmp_path: Path) -> None:
    path = write_mbox(tmp_path / "Archive.mbox")
    events = items(path)
    assert [e.raw for e in only_items(events)] == [MSG1, MSG2, MSG3]
    assert all(e.folder_path == "Archive" and e.problem is None for e in only_items(events))
    offsets = [int(e.source_ref.rsplit(":", 1)[1]) for e in events]
    data = path.read_bytes()
    assert all(data[o:].startswith(b"From ") for o in offsets)
    assert events[0].source_ref == "mbox:Archive.mbox:0"
    assert estimate_total(path) == 3


def test_sniffed_single_message_mbox_files_stay_in_their_folder(tmp_path: Path) -> None:
    (tmp_path / "ham").mkdir()
    (tmp_path / "ham" / "00001.7c53336b").write_bytes(
        b"From a@b  Thu Aug 22 12:36:23 2002\n" + MSG1
    )
    write_mbox(tmp_path / "Inbox")  # Thunderbird: an extensionless MBOX is a folder
    got = [(e.folder_path, e.raw, e.source_ref) for e in only_items(items(tmp_path))]
    assert got[0] == ("Inbox", MSG1, "mbox:Inbox:0")
    assert [f for f, _, _ in got[:3]] == ["Inbox"] * 3
    assert got[3] == ("ham", MSG1, "mbox:ham/00001.7c53336b:0")


def test_mboxrd_unquotes_only_when_asked(tmp_path: Path) -> None:
    path = write_mbox(tmp_path / "a.mbox")
    plain = only_items(items(path))[1].raw
    rd = only_items(items(path, mbox_variant="mboxrd"))[1].raw
    assert b"\n>From quoted\n" in plain
    assert b"\nFrom quoted\n" in rd and b">From" not in rd


def test_truncated_mbox_last_message_is_kept_with_a_problem(tmp_path: Path) -> None:
    path = write_mbox(tmp_path / "t.mbox")
    data = path.read_bytes()
    path.write_bytes(data[:-12])  # cut in the middle of the last line
    events = items(path)
    assert len(events) == 3
    last = events[-1]
    assert isinstance(last, ImportItem)
    assert last.raw == MSG3[:-10]
    assert last.problem is not None and "truncated" in last.problem
    assert all(isinstance(e, ImportItem) and e.problem is None for e in events[:2])


@pytest.mark.parametrize("chunk", [1, 5, 6, 64, 4099])
def test_mbox_chunk_boundaries_do_not_matter(tmp_path: Path, monkeypatch, chunk: int) -> None:
    path = write_mbox(tmp_path / "c.mbox")
    whole = [(e.source_ref, e.raw) for e in items(path, mbox_variant="mboxrd")]
    monkeypatch.setattr(mbox_module, "_CHUNK", chunk)
    assert [(e.source_ref, e.raw) for e in items(path, mbox_variant="mboxrd")] == whole
    assert estimate_total(path) == 3


def test_oversized_mbox_message_is_a_problem_not_held(tmp_path: Path) -> None:
    big = b"From: x@y\n\n" + b"x" * 5000 + b"\n"
    data = b"From a Tue Apr  1 00:06:38 2003\n" + big + b"\nFrom b Tue Apr  1 00:06:39 2003\n"
    data += MSG1
    events = list(
        read_mbox(io.BytesIO(data), ref_prefix="mbox:m", folder_path="", max_message=1000)
    )
    assert isinstance(events[0], ImportProblem) and "larger than" in events[0].reason
    assert isinstance(events[1], ImportItem) and events[1].raw == MSG1


def test_rhelp_pipermail_months(rhelp_month: Path) -> None:
    path = rhelp_month / "2003-May.txt"
    start = time.perf_counter()
    events = items(path)
    elapsed = time.perf_counter() - start
    got = only_items(events)
    assert len(got) == len(events)  # no problems
    assert len(got) == estimate_total(path)
    assert len(got) > 1000
    data = path.read_bytes()
    pos = 0  # every byte of the file is a From line, a message, or a separating newline
    for ev in got:
        offset = int(ev.source_ref.rsplit(":", 1)[1])
        assert offset == pos and data[offset:].startswith(b"From ")
        line_end = data.index(b"\n", offset) + 1
        assert data[line_end : line_end + len(ev.raw)] == ev.raw  # bytes as they are
        assert ev.folder_path == "2003-May"
        pos = line_end + len(ev.raw)
        pos += data[pos : pos + 1] == b"\n"
    assert pos == len(data)
    assert email.message_from_bytes(got[0].raw)["From"]
    assert b" at " in got[0].raw.split(b"\n", 1)[0]
    print(f"R-help 2003-May: {len(got)} msgs in {elapsed:.3f}s = {len(got) / elapsed:,.0f} msg/s")
    assert [e.source_ref for e in items(rhelp_month)] == [e.source_ref for e in items(rhelp_month)]


# --- maildir ---------------------------------------------------------------------------


def test_maildir_with_maildirpp_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for sub in ("", ".Work.Projects", ".Caf&AOk-"):
        for d in ("cur", "new", "tmp"):
            (root / sub / d).mkdir(parents=True)
    (root / "cur" / "1000.A.host:2,S").write_bytes(MSG1)
    (root / "new" / "1001.B.host").write_bytes(MSG2)
    (root / ".Work.Projects" / "cur" / "1002.C.host:2,").write_bytes(MSG3)
    (root / ".Caf&AOk-" / "new" / "1003.D.host").write_bytes(MSG1)
    events = items(root)
    assert [(e.folder_path, e.source_ref) for e in only_items(events)] == [
        ("", "maildir::1000.A.host"),
        ("", "maildir::1001.B.host"),
        ("Café", "maildir:.Caf&AOk-:1003.D.host"),
        ("Work/Projects", "maildir:.Work.Projects:1002.C.host"),
    ]
    assert len(events) == 4 and estimate_total(root) == 4


# --- ZIP -------------------------------------------------------------------------------


def test_zip_of_emls_mbox_and_maildir(tmp_path: Path) -> None:
    mbox = write_mbox(tmp_path / "x.mbox").read_bytes()
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Inbox/b.eml", MSG2)
        zf.writestr("Inbox/a.eml", MSG1)
        zf.writestr("lists/R.mbox", mbox)
        zf.writestr("md/cur/1.x:2,S", MSG3)
        zf.writestr("md/new/", b"")
        zf.writestr("md/.Sent/cur/2.x", MSG1)
        zf.writestr("md/.Sent/new/", b"")
    events = items(path)
    got = [(e.folder_path, e.raw, e.source_ref) for e in only_items(events)]
    assert got == [
        ("Inbox", MSG1, "eml:export.zip!Inbox/a.eml"),
        ("Inbox", MSG2, "eml:export.zip!Inbox/b.eml"),
        ("lists/R", MSG1, "mbox:export.zip!lists/R.mbox:0"),
        ("lists/R", MSG2, got[3][2]),
        ("lists/R", MSG3, got[4][2]),
        ("md/Sent", MSG1, "maildir:export.zip!md/.Sent:2.x"),
        ("md", MSG3, "maildir:export.zip!md:1.x"),
    ]
    assert len(events) == 7
    assert estimate_total(path) == 7


def test_zip_bomb_is_refused_before_decompression(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("huge.eml", b"Subject: x\n\n" + b"\0" * (64 << 20))
    assert path.stat().st_size < 200_000
    [ev] = items(path)
    assert isinstance(ev, ImportProblem)
    assert ev.source_ref == "zip:bomb.zip" and "compression ratio" in ev.reason


def test_zip_nested_one_level_and_unsafe_names(tmp_path: Path) -> None:
    inner2 = io.BytesIO()
    with zipfile.ZipFile(inner2, "w") as zf:
        zf.writestr("deep.eml", MSG1)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("in.eml", MSG2)
        zf.writestr("level2.zip", inner2.getvalue())
    path = tmp_path / "outer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../escape.eml", MSG3)
        zf.writestr("sub/inner.zip", inner.getvalue())
    events = items(path)
    assert [type(e).__name__ for e in events] == ["ImportProblem", "ImportItem", "ImportProblem"]
    assert "unsafe member path" in events[0].reason  # type: ignore[union-attr]
    item = events[1]
    assert isinstance(item, ImportItem)
    assert (item.folder_path, item.raw) == ("sub", MSG2)
    assert item.source_ref == "eml:outer.zip!sub/inner.zip!in.eml"
    assert "nested more than one level" in events[2].reason  # type: ignore[union-attr]
    assert not (tmp_path.parent / "escape.eml").exists()


def test_corrupt_zip_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    [ev] = items(path)
    assert isinstance(ev, ImportProblem) and ev.source_ref == "zip:bad.zip"


# --- safety and determinism ------------------------------------------------------------


def test_path_outside_allowed_roots_is_refused_before_reading(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.eml").write_bytes(MSG1)
    (allowed / "link").symlink_to(outside)
    with pytest.raises(ImportRefused, match="outside the allowed import roots"):
        iter_items(outside / "secret.eml", allowed_roots=[allowed])  # raises at the call
    with pytest.raises(ImportRefused):
        iter_items(allowed / "link" / "secret.eml", allowed_roots=[allowed])
    with pytest.raises(ImportRefused):
        iter_items(allowed / ".." / "outside", allowed_roots=[allowed])
    with pytest.raises(ImportRefused):
        estimate_total(outside, allowed_roots=[allowed])
    # a symlink inside an allowed directory that leads outside is not followed
    (allowed / "ok.eml").write_bytes(MSG2)
    events = list(iter_items(allowed, allowed_roots=[allowed]))
    assert [e.source_ref for e in events] == ["file:link", "eml:ok.eml"]
    assert isinstance(events[0], ImportProblem)


def test_source_refs_are_deterministic_and_unique(tmp_path: Path) -> None:
    write_mbox(tmp_path / "a.mbox")
    (tmp_path / "d").mkdir()
    for n in range(20):
        (tmp_path / "d" / f"{n:02}.eml").write_bytes(MSG1 + str(n).encode())
    first = [(e.source_ref, getattr(e, "raw", None)) for e in items(tmp_path)]
    second = [(e.source_ref, getattr(e, "raw", None)) for e in items(tmp_path)]
    assert first == second
    assert len({ref for ref, _ in first}) == len(first) == 23


# --- Outlook ---------------------------------------------------------------------------


def test_pst_items_rebuilt_with_folders_and_attachments(outlook_dir: Path) -> None:
    pst = outlook_dir / "outlook-pst" / "pst-extractor-npm" / "enron.pst"
    events = items(pst)
    got = only_items(events)
    assert len(got) == len(events) == 71
    assert estimate_total(pst) == 71
    folders = {e.folder_path for e in got}
    assert "lokay-m/MLOKAY (Non-Privileged)/Personal" in folders
    assert all(e.source_ref.startswith("pst:enron.pst:lokay-m/") for e in got)
    with_att = 0
    for ev in got:
        msg = email.message_from_bytes(ev.raw)
        assert msg["Message-ID"] and msg["Date"] and msg["From"]
        assert msg["X-Mailvault-Converted-From"] == "pst"
        assert msg.get_content_type() in (
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
        )
        with_att += any(p.get_filename() for p in msg.walk())
    assert with_att > 0
    # transport headers are kept verbatim; the old MIME structure headers are dropped
    first = email.message_from_bytes(got[0].raw)
    assert first["Message-ID"] == "<IWTBDKF2WUUQG3I3RF3DVZAFDYEPIJCPB@zlsvr22>"
    assert "Part_178602" not in got[0].raw.decode("utf-8", "replace")
    assert [e.raw for e in got] == [e.raw for e in only_items(items(pst))]  # deterministic


def test_ost_and_pst_without_transport_headers(outlook_dir: Path) -> None:
    ost = outlook_dir / "outlook-pst" / "pst-extractor-npm" / "pstextractortest@outlook.com.ost"
    got = only_items(items(ost))
    assert got and {"Inbox", "Sent Items"} <= {e.folder_path for e in got}
    welcome = next(e for e in got if b"Welcome to your new Outlook.com account" in e.raw)
    msg = email.message_from_bytes(welcome.raw)
    assert msg["From"] == "Outlook Team <no-reply@microsoft.com>"
    assert msg["To"] == "Pst Extractor <pstextractortest@outlook.com>"
    # contacts, distribution lists and appointments are not mail: nothing to import
    for name in ("dist-list.pst", "passworded.pst"):
        assert items(outlook_dir / "outlook-pst" / "java-libpst" / name) == []


def test_corrupt_pst_is_a_problem(outlook_dir: Path, tmp_path: Path) -> None:
    data = (outlook_dir / "outlook-pst" / "java-libpst" / "dist-list.pst").read_bytes()
    bad = tmp_path / "bad.pst"
    bad.write_bytes(data[:512] + os.urandom(4096))
    events = items(bad)
    assert events and all(isinstance(e, ImportProblem) for e in events)
    notpst = tmp_path / "fake.ost"
    notpst.write_bytes(b"not a pst at all")
    [ev] = items(notpst)
    assert isinstance(ev, ImportProblem) and "cannot open PST/OST" in ev.reason


def test_msg_files_rebuilt_as_mime(outlook_dir: Path) -> None:
    directory = outlook_dir / "outlook-msg" / "msg-extractor" / "example-msg-files"
    got = only_items(items(directory))
    assert [e.source_ref for e in got] == ["msg:strangeDate.msg", "msg:unicode.msg"]
    msg = email.message_from_bytes(got[1].raw)
    assert msg["Subject"] == "Test for TIF files"
    assert msg["X-Mailvault-Converted-From"] == "msg"
    names = [p.get_filename() for p in msg.walk() if p.get_filename()]
    assert names == ["import OleFileIO.tif", "raised value error.tif"]
    assert [p.get_content_type() for p in msg.walk()][:2] == [
        "multipart/mixed",
        "multipart/alternative",
    ]
    assert got[0].raw == only_items(items(directory / "strangeDate.msg"))[0].raw


def test_zip_of_pst_and_msg(outlook_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "outlook.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(outlook_dir / "outlook-pst" / "pst-extractor-npm" / "enron.pst", "a/enron.pst")
        zf.write(
            outlook_dir / "outlook-msg" / "msg-extractor" / "example-msg-files" / "unicode.msg",
            "u.msg",
        )
    got = only_items(items(path))
    direct = only_items(items(outlook_dir / "outlook-pst" / "pst-extractor-npm" / "enron.pst"))
    assert len(got) == 72
    assert [e.raw for e in got[:71]] == [e.raw for e in direct]
    assert got[0].source_ref == "pst:outlook.zip!a/enron.pst" + direct[0].source_ref[13:]
    assert got[0].folder_path == "a/" + direct[0].folder_path
    assert got[71].source_ref == "msg:outlook.zip!u.msg"


# --- tricky MIME -----------------------------------------------------------------------

NOT_MAIL = {
    ".png",
    ".gif",
    ".jpg",
    ".bmp",
    ".tiff",
    ".webp",
    ".xbm",
    ".pbm",
    ".pgm",
    ".ppm",
    ".ras",
    ".sgi",
    ".exr",
    ".au",
    ".wav",
    ".aiff",
    ".aifc",
}


def test_every_tricky_message_comes_out_byte_identical(tricky_dir: Path, tmp_path: Path) -> None:
    expected: dict[str, bytes] = {}  # source_ref -> the file's bytes
    empty: set[str] = set()
    outlook: set[str] = set()  # Outlook .msg files among the fixtures: rebuilt, not copied
    for path in sorted(tricky_dir.rglob("*")):
        if not path.is_file() or path.suffix.lower() in NOT_MAIL:
            continue
        if path.name in ("LICENSE", "NOTICE", "README", "COPYING"):
            continue
        name = str(path.relative_to(tricky_dir)).replace("/", "__").replace(":", "_") + ".eml"
        data = path.read_bytes()
        (tmp_path / name).write_bytes(data)
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            outlook.add(f"msg:{name}")
        elif data.strip():
            expected[f"eml:{name}"] = data
        else:
            empty.add(f"eml:{name}")
    assert len(expected) > 600
    events = items(tmp_path)
    got = {e.source_ref: e.raw for e in only_items(events)}
    assert {ref: raw for ref, raw in got.items() if ref.startswith("eml:")} == expected
    assert set(got) - set(expected) == outlook
    assert {e.source_ref for e in events if isinstance(e, ImportProblem)} == empty
