"""File Import configurations: path checks, uploads, and the ``ingestion.file_import`` job.

An import configuration names a server path (a file or folder inside one of
``settings.MAILVAULT_IMPORT_ROOTS``) and a target mailbox. An uploaded file is stored
under ``<first import root>/uploads/<uuid>/<safe name>`` and gets a configuration of its
own. The job calls :func:`mailvault.ingestion.imports.run_import`, which is idempotent:
a cancelled or failed import run again adds only what is missing.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import get_valid_filename

from mailvault.archive.models import Mailbox
from mailvault.ingestion.imports import ImportReport, allowed_import_roots, run_import
from mailvault.ingestion.models import ImportConfiguration
from mailvault.jobs.context import Cancelled, JobContext
from mailvault.jobs.registry import process_type

PROCESS_TYPE = "ingestion.file_import"
UPLOADS_DIR = "uploads"
# The process log keeps this many per-item problems of one run; the rest are counted.
MAX_PROBLEM_MESSAGES = 200


class ImportConfigError(ValueError):
    """A configuration that cannot be saved; ``field`` names the form field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def check_import_path(raw: str) -> Path:
    """The resolved path, if it exists inside an allowed import root."""
    roots = allowed_import_roots()
    if not raw.strip():
        raise ImportConfigError("Enter a server path.", "path")
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute():
        raise ImportConfigError("Enter an absolute server path (starting with /).", "path")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "(none configured)"
        raise ImportConfigError(
            f"{raw.strip()} is outside the allowed import folders ({allowed}).", "path"
        )
    if not resolved.exists():
        raise ImportConfigError(f"{raw.strip()} does not exist on the server.", "path")
    return resolved


def save_configuration(
    name: str, mailbox: Mailbox, path: str, *, config: ImportConfiguration | None = None
) -> ImportConfiguration:
    """Create or update a configuration after checking its path (ImportConfigError)."""
    resolved = check_import_path(path)
    config = config or ImportConfiguration()
    config.name = name.strip()
    config.mailbox = mailbox
    config.path = str(resolved)
    config.save()
    return config


def upload_limit() -> int:
    return int(settings.MAILVAULT_IMPORT_UPLOAD_MAX_BYTES)


def save_upload(upload: UploadedFile) -> Path:
    """Stream an uploaded file to ``<first root>/uploads/<uuid>/<safe name>``.

    Refuses a file over the size limit, before and while writing (the declared size of a
    multipart part can lie); nothing is left behind on refusal.
    """
    limit = upload_limit()
    if upload.size is not None and upload.size > limit:
        raise ImportConfigError(f"The file is larger than the limit of {_size(limit)}.", "file")
    roots = allowed_import_roots()
    if not roots:
        raise ImportConfigError("No import folder is configured (MAILVAULT_IMPORT_ROOTS).", "file")
    original = Path(upload.name or "").name
    try:
        safe = get_valid_filename(original)
    except Exception:  # SuspiciousFileOperation for names like ".."
        safe = ""
    safe = safe[:200] or "upload"
    directory = roots[0] / UPLOADS_DIR / uuid.uuid4().hex
    directory.mkdir(parents=True, exist_ok=False)
    target = directory / safe
    written = 0
    try:
        with target.open("xb") as out:
            for chunk in upload.chunks():
                written += len(chunk)
                if written > limit:
                    raise ImportConfigError(
                        f"The file is larger than the limit of {_size(limit)}.", "file"
                    )
                out.write(chunk)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return target


def create_from_upload(name: str, mailbox: Mailbox, upload: UploadedFile) -> ImportConfiguration:
    target = save_upload(upload)
    try:
        config = save_configuration(name or target.name, mailbox, str(target))
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise
    ImportConfiguration.objects.filter(pk=config.pk).update(uploaded=True)
    config.uploaded = True
    return config


def delete_configuration(config: ImportConfiguration) -> None:
    """Delete a configuration (its schedules go with it, see mailvault.jobs.signals) and,
    for an uploaded file, the file's upload folder."""
    upload_dir = _upload_dir(config) if config.uploaded else None
    config.delete()
    if upload_dir is not None:
        shutil.rmtree(upload_dir, ignore_errors=True)


def _upload_dir(config: ImportConfiguration) -> Path | None:
    """The ``uploads/<uuid>`` folder of an uploaded file, and nothing else."""
    parent = Path(config.path).resolve().parent
    for root in allowed_import_roots():
        if parent.parent == root / UPLOADS_DIR:
            return parent
    return None


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


@process_type(
    PROCESS_TYPE,
    "File import",
    config_model="ingestion.ImportConfiguration",
    timeout_seconds=6 * 3600,
)
def file_import(ctx: JobContext) -> None:
    """Import the configuration's path into its mailbox, with progress and cancellation."""
    config = ctx.config
    assert isinstance(config, ImportConfiguration)
    ctx.info(f"Importing {config.path} into {config.mailbox.primary_address}.")
    stop: list[Cancelled] = []

    def should_stop() -> bool:
        # run_import asks between batches, after each batch is stored: a safe point.
        try:
            ctx.check_cancelled()
        except Cancelled as exc:
            stop.append(exc)
            return True
        return False

    report = run_import(
        config.mailbox,
        [Path(config.path)],
        allowed_roots=allowed_import_roots(),
        progress=ctx.progress,
        should_stop=should_stop,
        batch_size=settings.MAILVAULT_IMPORT_JOB_BATCH,
    )
    # The throttled progress may lag behind; the log's counts and the shown ones agree.
    ctx.progress(report.seen, ctx.run.progress_total, force=True)
    _log_report(ctx, report)
    if stop:
        raise stop[0]


def _log_report(ctx: JobContext, report: ImportReport) -> None:
    for problem in report.problems[:MAX_PROBLEM_MESSAGES]:
        ctx.warning(problem)
    hidden = len(report.problems) - MAX_PROBLEM_MESSAGES
    if hidden > 0:
        ctx.warning(f"… and {hidden} more problems.")
    ctx.info(
        f"{report.seen} items read: {report.filed} filed into the mailbox "
        f"({report.archived} new in the archive), {report.duplicates} duplicates, "
        f"{report.skipped} already imported, {report.failed} failed."
    )
