"""Dispatch of import paths to the readers: files, directories, maildirs, ZIPs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .base import ImportEvent, ImportItem, ImportProblem, ImportRefused, esc, join_folder
from .detect import SNIFF_BYTES, Kind, detect
from .maildir import is_maildir, maildir_files, maildir_folders, unique_name
from .mbox import DEFAULT_MAX_MESSAGE, MboxVariant, count_from_lines, read_mbox
from .outlook import count_pst, read_msg, read_pst

MBOX_EXTENSIONS = {".mbox", ".mbx", ".mbs", ".txt"}
# Files a mail client keeps next to its folders: never mail, never worth a problem report.
IGNORED_SUFFIXES = {".msf", ".lock", ".ds_store"}


@dataclass(frozen=True)
class ReadOptions:
    mbox_variant: MboxVariant = "mboxo"
    max_message: int = DEFAULT_MAX_MESSAGE
    # ZIP limits (see .archive)
    zip_max_total: int = 32 << 30
    zip_max_ratio: int = 100
    zip_max_members: int = 500_000
    allowed_roots: tuple[Path, ...] | None = None


def check_allowed(path: Path, allowed_roots: list[Path] | None) -> Path:
    """Resolve ``path`` (following symlinks) and refuse it outside the allowed roots."""
    resolved = path.resolve()
    if allowed_roots is not None and not _inside(resolved, allowed_roots):
        raise ImportRefused(f"{path} is outside the allowed import roots")
    if not resolved.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return resolved


def _inside(resolved: Path, roots: list[Path] | tuple[Path, ...]) -> bool:
    return any(resolved.is_relative_to(Path(r).resolve()) for r in roots)


def iter_items(
    path: Path,
    *,
    allowed_roots: list[Path] | None,
    mbox_variant: MboxVariant = "mboxo",
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Iterator[ImportEvent]:
    """Stream the messages under ``path`` as ImportItem/ImportProblem, in a fixed order.

    ``allowed_roots=None`` means no restriction (operator CLI); otherwise a path outside
    the roots after resolving symlinks raises ImportRefused here, before anything is read
    (symlinks inside a walked directory that lead outside become ImportProblems). A
    missing path raises FileNotFoundError. ``source_ref`` values are relative to ``path``
    (unique within one call; the importer should key resume state by path and ref).
    """
    resolved = check_allowed(Path(path), allowed_roots)
    roots = tuple(allowed_roots) if allowed_roots is not None else None
    opts = ReadOptions(mbox_variant=mbox_variant, max_message=max_message, allowed_roots=roots)
    if resolved.is_dir():
        return _walk(resolved, PurePosixPath(), opts)
    return read_file(resolved, PurePosixPath(resolved.name), "", opts, top_level=True)


def _dir_folder(rel: PurePosixPath) -> str:
    # Thunderbird keeps subfolders of "Inbox" in "Inbox.sbd/".
    return "/".join(p[:-4] if p.lower().endswith(".sbd") else p for p in rel.parts)


def mbox_folder(rel_dir: str, name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return join_folder(
        rel_dir, stem if dot and stem and f".{ext.lower()}" in MBOX_EXTENSIONS else name
    )


def _has_mbox_extension(name: str) -> bool:
    """Named as an MBOX (``.txt`` is not: pipermail months and single saved mails use it)."""
    ext = f".{name.rpartition('.')[2].lower()}"
    return ext in MBOX_EXTENSIONS and ext != ".txt" and "." in name[1:]


def single_message_in_parent(events: Iterator[ImportEvent], folder: str) -> Iterator[ImportEvent]:
    """A sniffed MBOX holding one message (a mail file saved with its ``From `` line, as in
    the SpamAssassin corpus) files it in the directory's folder, not a folder of its own;
    an extensionless MBOX with several messages (Thunderbird's ``Inbox``) is a folder."""
    first = next(events, None)
    if first is None:
        return
    second = next(events, None)
    if second is None and isinstance(first, ImportItem):
        yield ImportItem(folder, first.raw, first.source_ref, first.problem)
        return
    yield first
    if second is not None:
        yield second
        yield from events


def _walk(directory: Path, rel: PurePosixPath, opts: ReadOptions) -> Iterator[ImportEvent]:
    folder = _dir_folder(rel)
    if is_maildir(directory):
        yield from _read_maildir(directory, rel, folder)
        skip = {"cur", "new", "tmp"}
    else:
        skip = set()
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield ImportProblem(f"dir:{esc(str(rel))}", f"cannot list directory: {exc}")
        return
    subdirs = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name in skip:
            continue  # hidden files, maildir++ subfolders (read above)
        child = rel / name
        if (
            entry.is_symlink()
            and opts.allowed_roots is not None
            and not _inside(Path(entry.path).resolve(), opts.allowed_roots)
        ):
            yield ImportProblem(
                f"file:{esc(str(child))}", "symlink leads outside the allowed import roots"
            )
            continue
        if entry.is_dir(follow_symlinks=False):
            subdirs.append((Path(entry.path), child))
        elif entry.is_file():
            if os.path.splitext(name)[1].lower() in IGNORED_SUFFIXES:
                continue
            yield from read_file(Path(entry.path), child, folder, opts)
    for sub_path, sub_rel in subdirs:
        yield from _walk(sub_path, sub_rel, opts)


def _read_maildir(directory: Path, rel: PurePosixPath, base: str) -> Iterator[ImportEvent]:
    for sub_folder, folder_dir in maildir_folders(directory):
        folder_rel = "/".join((rel / folder_dir.name).parts if sub_folder else rel.parts)
        for msg_path in maildir_files(folder_dir):
            ref = f"maildir:{esc(folder_rel)}:{esc(unique_name(msg_path.name))}"
            yield from _read_eml(msg_path, ref, join_folder(base, sub_folder))


def _read_eml(
    path: Path, ref: str, folder: str, max_message: int = DEFAULT_MAX_MESSAGE
) -> Iterator[ImportEvent]:
    try:
        size = path.stat().st_size
        if size > max_message:
            yield ImportProblem(ref, f"message larger than {max_message} bytes, skipped")
            return
        raw = path.read_bytes()
    except OSError as exc:
        yield ImportProblem(ref, f"cannot read file: {exc}")
        return
    if not raw.strip():
        yield ImportProblem(ref, "empty file")
        return
    yield ImportItem(folder, raw, ref)


def read_file(
    path: Path,
    rel: PurePosixPath,
    folder: str,
    opts: ReadOptions,
    *,
    top_level: bool = False,
    zip_depth: int = 0,
) -> Iterator[ImportEvent]:
    """Read one file of any supported kind; ``rel`` names it in source_refs."""
    srel = esc(str(rel))
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        yield ImportProblem(f"file:{srel}", f"cannot read file: {exc}")
        return
    kind = detect(path.name, head)
    if kind is Kind.EML:
        yield from _read_eml(path, f"eml:{srel}", folder, opts.max_message)
    elif kind is Kind.MBOX:
        try:
            with path.open("rb") as fh:
                events = read_mbox(
                    fh,
                    ref_prefix=f"mbox:{srel}",
                    folder_path=mbox_folder(folder, path.name),
                    variant=opts.mbox_variant,
                    max_message=opts.max_message,
                )
                if _has_mbox_extension(path.name):
                    yield from events
                else:
                    yield from single_message_in_parent(events, folder)
        except OSError as exc:
            yield ImportProblem(f"mbox:{srel}", f"cannot read file: {exc}")
    elif kind is Kind.MSG:
        yield from read_msg(path, ref=f"msg:{srel}", folder_path=folder)
    elif kind is Kind.PST:
        yield from read_pst(path, ref_prefix=f"pst:{srel}", folder_base=folder)
    elif kind is Kind.ZIP:
        from .archive import read_zip

        yield from read_zip(path, srel, folder, opts, depth=zip_depth)
    else:
        yield ImportProblem(f"file:{srel}", "not a recognised mail file, skipped")


def estimate_total(path: Path, *, allowed_roots: list[Path] | None = None) -> int:
    """A cheap message count for a progress bar (files, ``From `` lines, PST metadata).

    Same refusal as iter_items when ``allowed_roots`` is given. PST/OST counts come from
    folder metadata and include non-mail items (contacts, appointments).
    """
    path = check_allowed(Path(path), allowed_roots)
    return _estimate_dir(path) if path.is_dir() else _estimate_file(path)


def _estimate_dir(directory: Path) -> int:
    total = 0
    skip: set[str] = set()
    if is_maildir(directory):
        total += sum(1 for _, d in maildir_folders(directory) for _ in maildir_files(d))
        skip = {"cur", "new", "tmp"}
    with os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith(".") or entry.name in skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                total += _estimate_dir(Path(entry.path))
            elif entry.is_file():
                total += _estimate_file(Path(entry.path))
    return total


def _estimate_file(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            kind = detect(path.name, fh.read(SNIFF_BYTES))
            if kind is Kind.MBOX:
                fh.seek(0)
                return count_from_lines(fh)
        if kind is Kind.PST:
            return count_pst(path)
        if kind is Kind.ZIP:
            from .archive import estimate_zip

            return estimate_zip(path)
    except Exception:  # an estimate never fails the import
        return 1
    return 0 if kind is Kind.UNKNOWN else 1
