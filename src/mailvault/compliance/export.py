"""Compliance exports: messages to a ZIP of EML files (folders kept) or to an MBOX file.

Streamed: each original is read from the store piece by piece and written straight into
the archive file, so memory stays bounded whatever the sizes. The file lands under
``MAILVAULT_EXPORT_DIR``; only the user who asked may download it, until it expires
(``MAILVAULT_EXPORT_EXPIRY_HOURS``) and :func:`expire_exports` removes it.

MBOX is mboxrd: a line of a message that starts with ``From `` after any number of
``>`` gets one more ``>``, so reading reverses it exactly. A message that does not end
with a newline is marked ``mailvault-noeol`` on its ``From `` line, so :func:`read_mbox`
gives back the original bytes, byte for byte, in every case.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone
from django.utils.text import get_valid_filename

from mailvault.accounts.models import User
from mailvault.archive.models import Folder, Mailbox, Message, Placement
from mailvault.archive.store import BlobStore, store_for
from mailvault.compliance import hooks
from mailvault.compliance.matching import check_query, matching_ids
from mailvault.compliance.models_export import ExportJob
from mailvault.tenancy.context import current_tenant

NOEOL = b"mailvault-noeol"
_QUOTE_MAX = 64 * 1024  # a line start of only ">" longer than this is written unquoted
_FROM_RE = re.compile(rb"^>*From ")


class ExportError(ValueError):
    pass


def export_dir() -> Path:
    path = Path(settings.MAILVAULT_EXPORT_DIR) / f"tenant-{current_tenant().pk}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def file_path(job: ExportJob) -> Path:
    return export_dir() / job.file_name


def request_export(
    user: User,
    *,
    source: str,
    fmt: str,
    query: str = "",
    mailbox: Mailbox | None = None,
    folder: Folder | None = None,
) -> ExportJob:
    """Create the export and queue its job."""
    from mailvault.compliance.jobs import EXPORT
    from mailvault.jobs import services as job_services

    if fmt not in ExportJob.Format.values:
        raise ExportError("Choose ZIP or MBOX.")
    if source == ExportJob.Source.SEARCH:
        if not query.strip():
            raise ExportError("Enter the search to export.")
        check_query(query)
    elif source == ExportJob.Source.FOLDER:
        if folder is None:
            raise ExportError("Choose the folder to export.")
        mailbox = folder.mailbox
    elif source == ExportJob.Source.MAILBOX:
        if mailbox is None:
            raise ExportError("Choose the mailbox to export.")
    else:
        raise ExportError(f"Unknown export source {source!r}.")
    job = ExportJob.objects.create(
        requested_by=user,
        source=source,
        format=fmt,
        query=query.strip(),
        mailbox=mailbox,
        folder=folder,
    )
    job_services.run_now(EXPORT, job, triggered_by=user.username)
    hooks.record("compliance.export.request", user, job, f"Export requested: {job.describe()}")
    return job


@dataclass(frozen=True)
class Entry:
    message_id: int
    sha256: str
    folder_path: str  # where it goes in the ZIP ("" for none)


def entries(job: ExportJob) -> list[Entry]:
    """What the export holds, in a stable order (one entry per placement for folders and
    mailboxes; one per message for a search, under its first mailbox and folder)."""
    if job.source == ExportJob.Source.SEARCH:
        ids = sorted(matching_ids(job.query))
        found: dict[int, Entry] = {}
        rows = (
            Placement.objects.filter(message_id__in=ids)
            .select_related("mailbox", "folder", "message")
            .order_by("message_id", "pk")
        )
        for p in rows:
            if p.message_id not in found:
                path = f"{p.mailbox.primary_address}/{p.folder.path}"
                found[p.message_id] = Entry(p.message_id, p.message.sha256, path)
        return [found[i] for i in ids if i in found]
    placements = Placement.objects.select_related("folder", "message")
    if job.source == ExportJob.Source.FOLDER:
        if job.folder is None:
            raise ExportError("The folder of this export no longer exists.")
        placements = placements.filter(folder=job.folder)
    else:
        if job.mailbox is None:
            raise ExportError("The mailbox of this export no longer exists.")
        placements = placements.filter(mailbox=job.mailbox)
    return [
        Entry(p.message_id, p.message.sha256, p.folder.path)
        for p in placements.order_by("folder__path", "message_id")
    ]


def _zip_name(entry: Entry, subject: str) -> str:
    parts = [get_valid_filename(s) or "_" for s in entry.folder_path.split("/") if s]
    safe = get_valid_filename(subject[:60]) or "message"
    return "/".join([*parts, f"{entry.message_id}-{safe}.eml"])


def run_export(
    job: ExportJob,
    *,
    progress: Callable[..., None] | None = None,
    check: Callable[[], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportJob:
    job.status = ExportJob.Status.RUNNING
    job.save(update_fields=["status"])
    try:
        items = entries(job)
        suffix = "zip" if job.format == ExportJob.Format.ZIP else "mbox"
        job.file_name = f"export-{job.pk}.{suffix}"
        target = file_path(job)
        partial = target.with_suffix(".part")
        subjects = dict(
            Message.objects.filter(pk__in={e.message_id for e in items}).values_list(
                "pk", "subject"
            )
        )
        with store_for(current_tenant()) as store, open(partial, "wb") as out:
            if job.format == ExportJob.Format.ZIP:
                _write_zip(store, out, items, subjects, progress, check)
            else:
                _write_mbox(store, out, items, progress, check)
        partial.replace(target)
        job.size = target.stat().st_size
        job.message_count = len(items)
        job.status = ExportJob.Status.READY
        job.finished_at = timezone.now()
        job.expires_at = job.finished_at + timedelta(hours=settings.MAILVAULT_EXPORT_EXPIRY_HOURS)
        job.save()
        if log is not None:
            log(f"Exported {len(items)} message(s), {job.size} bytes ({job.format}).")
        hooks.record("compliance.export.done", job.requested_by, job, f"Export ready: {job}")
    except BaseException as exc:
        job.status = ExportJob.Status.FAILED
        job.error = f"{type(exc).__name__}: {exc}"[:2000]
        job.save(update_fields=["status", "error"])
        raise
    return job


def _write_zip(
    store: BlobStore,
    out: BinaryIO,
    items: list[Entry],
    subjects: dict[int, str],
    progress: Callable[..., None] | None,
    check: Callable[[], None] | None,
) -> None:
    used: set[str] = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for done, entry in enumerate(items, 1):
            if check is not None:
                check()
            name = _zip_name(entry, subjects.get(entry.message_id, ""))
            if name in used:
                continue
            used.add(name)
            with store.open(entry.sha256) as reader, zf.open(name, "w", force_zip64=True) as dst:
                for piece in reader.iter_pieces():
                    dst.write(piece)
            if progress is not None:
                progress(done, len(items))


def _from_line(noeol: bool) -> bytes:
    stamp = timezone.now().strftime("%a %b %d %H:%M:%S %Y").encode()
    return b"From MAILER-DAEMON " + stamp + (b" " + NOEOL if noeol else b"") + b"\n"


class _Quoter:
    """mboxrd quoting over a stream of pieces: ``>*From `` at a line start gets a ``>``."""

    def __init__(self) -> None:
        self.at_start = True
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        pos = 0
        while pos < len(data):
            if self.at_start:
                self.pending += data[pos : pos + 1]
                pos += 1
                decided = self._decide()
                if decided is not None:
                    out += decided
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                out += data[pos:]
                break
            out += data[pos : newline + 1]
            pos = newline + 1
            self.at_start = True
        return bytes(out)

    def _decide(self) -> bytes | None:
        p = self.pending
        stripped = p.lstrip(b">")
        if stripped.startswith(b"From "):
            self.pending, self.at_start = b"", False
            return b">" + p
        if p.endswith(b"\n"):
            self.pending, self.at_start = b"", True
            return p
        if b"From ".startswith(stripped) and len(p) <= _QUOTE_MAX:
            return None  # not decided yet
        self.pending, self.at_start = b"", False
        return p

    def finish(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest


def _write_mbox(
    store: BlobStore,
    out: BinaryIO,
    items: list[Entry],
    progress: Callable[..., None] | None,
    check: Callable[[], None] | None,
) -> None:
    seen: set[int] = set()
    for done, entry in enumerate(items, 1):
        if check is not None:
            check()
        if entry.message_id in seen:
            continue
        seen.add(entry.message_id)
        with store.open(entry.sha256) as reader:
            last = b""
            quoter = _Quoter()
            header_written = False
            for piece in reader.iter_pieces():
                if not header_written:
                    # The From line needs to know whether the message ends with a newline:
                    # look at its last byte first (cheap: the size is known).
                    out.write(_from_line(not _ends_with_newline(store, entry.sha256)))
                    header_written = True
                out.write(quoter.feed(piece))
                if piece:
                    last = piece[-1:]
            if not header_written:
                out.write(_from_line(True))
            out.write(quoter.finish())
        out.write(b"\n" if last == b"\n" else b"\n\n")
        if progress is not None:
            progress(done, len(items))


def _ends_with_newline(store: BlobStore, sha256: str) -> bool:
    with store.open(sha256) as reader:
        last = b""
        for piece in reader.iter_pieces():
            if piece:
                last = piece[-1:]
        return last == b"\n"


def read_mbox(handle: BinaryIO) -> Iterator[bytes]:
    """The messages of an mboxrd file written by this module, byte for byte."""
    current: bytearray | None = None
    noeol = False
    for line in handle:
        if line.startswith(b"From "):
            if current is not None:
                yield _finish(current, noeol)
            current = bytearray()
            noeol = line.rstrip(b"\n").endswith(b" " + NOEOL)
            continue
        if current is None:
            continue
        if _FROM_RE.match(line):
            line = line[1:]
        current += line
    if current is not None:
        yield _finish(current, noeol)


def _finish(data: bytearray, noeol: bool) -> bytes:
    drop = 2 if noeol else 1
    return bytes(data[:-drop]) if len(data) >= drop else bytes(data)


def expire_exports(now: datetime | None = None) -> int:
    """Delete the files of exports past their expiry; returns how many."""
    now = now or timezone.now()
    count = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.READY, expires_at__lte=now):
        if job.file_name:
            file_path(job).unlink(missing_ok=True)
        job.status = ExportJob.Status.EXPIRED
        job.save(update_fields=["status"])
        count += 1
    return count


def downloadable(job: ExportJob, user: User) -> bool:
    return (
        job.requested_by_id == user.pk
        and job.status == ExportJob.Status.READY
        and job.expires_at is not None
        and job.expires_at > timezone.now()
        and file_path(job).exists()
    )
