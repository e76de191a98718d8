"""File import: EML, MSG, MBOX, maildir, PST/OST and ZIP files into one archive mailbox.

Idempotent and resumable: every item carries a stable resume key (the import path and
the reader's ``source_ref``, filed as the placement's ``source_ref``); an item whose key
is already filed in the mailbox is skipped before it is parsed, and anything else that is
already archived is deduplicated by content. Re-running an import that was killed
half-way therefore adds exactly what is missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from mailvault.archive.filing import filed_source_refs
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.ingestion.bulk_gc import fewer_collections
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, IngestResult, Target
from mailvault.sources.files import ImportItem, ImportProblem, estimate_total, iter_items
from mailvault.sources.files.base import esc

log = logging.getLogger("mailvault.ingestion.imports")

ProgressCallback = Callable[[int, int | None], None]


class ImportRefused(ValueError):
    """The import cannot start (unknown mailbox, path outside the allowed roots, …)."""


@dataclass
class ImportReport:
    archived: int = 0  # newly stored in the archive
    filed: int = 0  # filed into the mailbox (new placements)
    duplicates: int = 0  # already in this mailbox and folder
    skipped: int = 0  # already imported (same source item), not read again
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.filed + self.duplicates + self.skipped + self.failed


def allowed_import_roots() -> list[Path]:
    return [Path(p).resolve() for p in settings.MAILVAULT_IMPORT_ROOTS]


def prepare_workers(cpus: int) -> int:
    """Prepare workers for an import on ``cpus`` cores: one core is left to the importing
    process (its writes and tantivy's indexing thread). On two cores one worker imported
    R-help at 4,430-4,600 msg/s where two gave 4,100-4,130 (bench/import_cpu.py, four
    runs alternating): the second worker only competed with the importer for the cores,
    since one prepares a batch in half the time the importer takes to write one."""
    return max(1, min(3, cpus - 1))


# A resume key names the import's path whole up to this length, by a hash beyond it
# (Placement.source_ref holds 512 characters).
_MAX_ROOT_IN_REF = 200
# The Ingestor runs a batch at once when its messages reach this many bytes (memory).
IMPORT_BATCH_BYTES = 64 << 20


def resume_key_prefix(path: Path) -> str:
    """What goes before the reader's ``source_ref`` of each item under ``path``.

    The reader's refs are relative to the path it was given (``eml:1.eml``), so two
    folders with files of the same names would share them: without the path in the key,
    importing the second folder into the same mailbox skipped its messages as "imported
    before". Resuming the same path finds its own keys again. A file's refs name the
    file already (``mbox:2003-April.txt:0``), so its directory is enough: a file at the
    top of a folder imported before is recognised when imported on its own."""
    resolved = path.resolve()
    root = esc(str(resolved.parent if resolved.is_file() else resolved))
    if len(root) > _MAX_ROOT_IN_REF:
        root = "sha256-" + hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{root}!"


def run_import(
    mailbox: Mailbox,
    paths: Iterable[Path],
    *,
    allowed_roots: list[Path] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 500,
    should_stop: Callable[[], bool] | None = None,
) -> ImportReport:
    """Import every message under ``paths`` into ``mailbox`` (the active tenant's)."""
    paths = [Path(p) for p in paths]
    roots = allowed_roots if allowed_roots is not None else allowed_import_roots()
    for path in paths:
        resolved = path.resolve()
        if roots and not any(resolved.is_relative_to(root) for root in roots):
            raise ImportRefused(f"{path} is outside the allowed import folders.")
        if not resolved.exists():
            raise ImportRefused(f"{path} does not exist.")
    report = ImportReport()
    # The count is for the progress bar only, and it reads every file once more (0.85 s
    # of the 40 s R-help import): without a progress callback it is not made.
    total: int | None = None
    if progress is not None:
        total = 0
        for path in paths:
            count = estimate_total(path)
            total = None if count is None or total is None else total + count
    pending: list[tuple[str, ImportItem]] = []  # (resume key, item)
    targets: dict[str, Target] = {}  # by folder path
    # Into a mailbox with nothing filed yet, nothing can have been imported before: the
    # lookup of what an earlier (killed) run did is skipped. Correctness never rests on it
    # (the store and the placements deduplicate); it saves re-reading and counts "skipped".
    resuming = Placement.objects.filter(mailbox=mailbox).exists()

    def flush(ingestor: Ingestor) -> None:
        done = filed_source_refs(mailbox, [key for key, _ in pending]) if resuming else set()
        for key, item in pending:
            if key in done:
                report.skipped += 1
                continue
            if item.problem:  # read, but damaged (a truncated MBOX): archived as it is
                report.problems.append(f"{item.source_ref}: {item.problem}")
            target = targets.get(item.folder_path)
            if target is None:
                target = targets[item.folder_path] = Target(mailbox, item.folder_path)
            ingestor.add(
                IngestRequest(
                    raw=item.raw,
                    source=Message.Source.FILE,
                    targets=[target],
                    source_ref=key,
                )
            )
        # The workers prepare this batch while the previous one is recorded.
        tally(ingestor.submit())
        pending.clear()
        if progress:
            progress(report.seen, total)

    def tally(results: list[IngestResult]) -> None:
        for result in results:
            report.archived += int(result.stored)
            if result.placements_added:
                report.filed += 1
            else:
                report.duplicates += 1

    workers = prepare_workers(os.cpu_count() or 1)
    with (
        fewer_collections(),
        Ingestor(
            batch_size=batch_size * 4,
            # Documents waiting for the next commit are held in memory (peak RSS, issue 3;
            # the pipeline also commits at MAX_PENDING_INDEX_CHARS of text). 10,000 rather
            # than 5,000: half the segments to merge, 4,705-4,943 msg/s against 4,510-4,607
            # on R-help (bench/import_cpu.py, alternating), for 30-40 MB more peak RSS.
            index_every=10_000,
            index_interval_s=15.0,
            max_batch_bytes=IMPORT_BATCH_BYTES,
            workers=workers,
            keep_results=False,
            index_in_background=True,
            store_in_background=True,
            transaction_seconds=settings.MAILVAULT_IMPORT_COMMIT_MS / 1000,
        ) as ingestor,
    ):
        for path in paths:
            prefix = resume_key_prefix(path)
            for entry in iter_items(path, allowed_roots=roots or None):
                if isinstance(entry, ImportProblem):
                    report.failed += 1
                    report.problems.append(str(entry))
                    continue
                pending.append((prefix + entry.source_ref, entry))
                if len(pending) >= batch_size:
                    flush(ingestor)
                    if should_stop and should_stop():
                        tally(ingestor.flush())
                        report.problems.append("stopped before the end; run it again to resume")
                        return report
        flush(ingestor)  # batches run across files: 270 monthly MBOX files are not 270 tails
        tally(ingestor.flush())
        if progress:  # the last batches were counted after flush() reported
            progress(report.seen, total)
    if report.filed:
        mailbox.last_import_at = timezone.now()
        mailbox.save(update_fields=["last_import_at"])
    return report
