"""ZIP archives of mail files, streamed member by member.

Guards: the archive is refused before anything is decompressed when it has too many
members, when the declared uncompressed total exceeds the budget, or when the overall
compression ratio is beyond ``zip_max_ratio`` (mail rarely compresses beyond 10:1; a zip
bomb does beyond 1000:1). A big member with an extreme ratio is refused on its own.
zipfile never yields more than a member's declared size, so the declared sizes bound
the work. Nested ZIPs are read one level deep and share the outer budget. Member names
are only used as folder names and source_refs, never as paths on disk; absolute names
and ``..`` segments are refused. Members that need random access (PST, MSG, nested ZIP)
are copied to a private temporary directory first.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .base import ImportEvent, ImportItem, ImportProblem, esc, join_folder
from .detect import SNIFF_BYTES, Kind, detect
from .maildir import maildirpp_folder, unique_name
from .mbox import count_from_lines, read_mbox

if TYPE_CHECKING:
    from .reader import ReadOptions

_RATIO_FLOOR = 1 << 20  # members below 1 MiB are exempt from the per-member ratio check


def _safe_parts(name: str) -> list[str] | None:
    name = name.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        return None
    return parts


def _maildir_member(parts: list[str], dirs: set[str]) -> tuple[str, str] | None:
    """(maildir folder dir, folder path) when the member is a message of a maildir."""
    if len(parts) < 2 or parts[-2] not in ("cur", "new"):
        return None
    base = "/".join(parts[:-2])
    prefix = f"{base}/" if base else ""
    if not {f"{prefix}cur", f"{prefix}new"} <= dirs:
        return None
    last = parts[-3] if len(parts) >= 3 else ""
    if last.startswith(".") and len(parts) >= 3:
        return base, join_folder("/".join(parts[:-3]), maildirpp_folder(last))
    return base, base


def _check_archive(
    zf: zipfile.ZipFile, size: int, opts: ReadOptions, budget: list[int]
) -> str | None:
    infos = zf.infolist()
    if len(infos) > opts.zip_max_members:
        return f"too many members ({len(infos)} > {opts.zip_max_members})"
    total = sum(i.file_size for i in infos)
    if total > budget[0]:
        return f"uncompressed size {total} exceeds the limit of {budget[0]} bytes"
    if total > _RATIO_FLOOR and total > opts.zip_max_ratio * max(size, 1):
        return f"compression ratio {total // max(size, 1)}:1 exceeds {opts.zip_max_ratio}:1"
    budget[0] -= total
    return None


def read_zip(
    path: Path,
    rel_ref: str,
    folder: str,
    opts: ReadOptions,
    *,
    depth: int = 0,
    budget: list[int] | None = None,
) -> Iterator[ImportEvent]:
    """Read a ZIP; ``rel_ref`` names it in source_refs (already escaped)."""
    budget = budget if budget is not None else [opts.zip_max_total]
    zref = f"zip:{rel_ref}"
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield ImportProblem(zref, f"cannot open ZIP file: {exc}")
        return
    with zf, tempfile.TemporaryDirectory(prefix="mailvault-zip-") as tmp:
        refused = _check_archive(zf, path.stat().st_size, opts, budget)
        if refused:
            yield ImportProblem(zref, f"ZIP refused: {refused}")
            return
        all_infos = zf.infolist()
        infos = sorted((i for i in all_infos if not i.is_dir()), key=lambda i: i.filename)
        dirs = {
            "/".join(p[:k])
            for i in all_infos
            if (p := _safe_parts(i.filename))
            for k in range(1, len(p) + (1 if i.is_dir() else 0))
        }
        for n, info in enumerate(infos):
            yield from _member(zf, info, n, rel_ref, folder, dirs, Path(tmp), opts, depth, budget)


def _member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    n: int,
    rel_ref: str,
    folder: str,
    dirs: set[str],
    tmp: Path,
    opts: ReadOptions,
    depth: int,
    budget: list[int],
) -> Iterator[ImportEvent]:
    from .reader import mbox_folder, read_file

    mref = f"{rel_ref}!{esc(info.filename)}"
    parts = _safe_parts(info.filename)
    if parts is None:
        yield ImportProblem(f"zip:{mref}", "unsafe member path, skipped")
        return
    if not parts or parts[-1].startswith("."):
        return
    if info.flag_bits & 0x1:
        yield ImportProblem(f"zip:{mref}", "encrypted member, skipped")
        return
    if info.file_size > _RATIO_FLOOR and (
        info.file_size > opts.zip_max_ratio * max(info.compress_size, 1)
    ):
        yield ImportProblem(f"zip:{mref}", "compression ratio too high, member refused")
        return
    member_dir = join_folder(folder, "/".join(parts[:-1]))
    try:
        with zf.open(info) as fh:
            kind = detect(parts[-1], fh.read(SNIFF_BYTES))
        maildir = _maildir_member(parts, dirs)
        if maildir is not None:
            kind = Kind.EML
            mref = f"{rel_ref}!{esc(maildir[0])}:{esc(unique_name(parts[-1]))}"
            member_dir = join_folder(folder, maildir[1])
        if kind is Kind.EML:
            if info.file_size > opts.max_message:
                yield ImportProblem(f"eml:{mref}", "message too large, skipped")
                return
            raw = zf.read(info)
            prefix = "maildir" if maildir is not None else "eml"
            if raw.strip():
                yield ImportItem(member_dir, raw, f"{prefix}:{mref}")
            else:
                yield ImportProblem(f"{prefix}:{mref}", "empty file")
        elif kind is Kind.MBOX:
            with zf.open(info) as fh:
                yield from read_mbox(
                    fh,
                    ref_prefix=f"mbox:{mref}",
                    folder_path=mbox_folder(member_dir, parts[-1]),
                    variant=opts.mbox_variant,
                    max_message=opts.max_message,
                )
        elif kind is Kind.ZIP and depth >= 1:
            yield ImportProblem(f"zip:{mref}", "ZIP nested more than one level, skipped")
        elif kind in (Kind.MSG, Kind.PST, Kind.ZIP):
            local = tmp / f"member-{n}{Path(parts[-1]).suffix[:8]}"
            with zf.open(info) as src, local.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            try:
                if kind is Kind.ZIP:
                    yield from read_zip(
                        local, mref, member_dir, opts, depth=depth + 1, budget=budget
                    )
                else:
                    yield from _renamed(
                        read_file(local, PurePosixPath(parts[-1]), member_dir, opts),
                        parts[-1],
                        mref,
                    )
            finally:
                local.unlink(missing_ok=True)
        else:
            yield ImportProblem(f"file:{mref}", "not a recognised mail file, skipped")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        # NotImplementedError: a compression method zipfile lacks (deflate64, ...)
        yield ImportProblem(f"zip:{mref}", f"cannot read member: {exc}")


def _renamed(events: Iterator[ImportEvent], name: str, mref: str) -> Iterator[ImportEvent]:
    """Rewrite refs of a member read from a temp copy to name the member inside the ZIP."""
    old = esc(name)
    for ev in events:
        kind, _, rest = ev.source_ref.partition(":")
        ref = f"{kind}:{mref}{rest[len(old) :]}" if rest.startswith(old) else ev.source_ref
        if isinstance(ev, ImportItem):
            yield ImportItem(ev.folder_path, ev.raw, ref, ev.problem)
        else:
            yield ImportProblem(ref, ev.reason)


def estimate_zip(path: Path) -> int:
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            with zf.open(info) as fh:
                kind = detect(info.filename.rsplit("/", 1)[-1], fh.read(SNIFF_BYTES))
            if kind is Kind.MBOX:
                with zf.open(info) as fh:
                    total += count_from_lines(fh)
            elif kind is not Kind.UNKNOWN:
                total += 1
    return total
