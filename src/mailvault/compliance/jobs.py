"""Process types of the compliance app: the retention run and exports."""

from __future__ import annotations

from django.db import models

from mailvault.compliance import deletion, export, retention
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_retention import RetentionSettings
from mailvault.jobs.context import JobContext
from mailvault.jobs.registry import process_type

RETENTION = "compliance.retention"
EXPORT = "compliance.export"
EXPIRE_EXPORTS = "compliance.expire_exports"
COMPACT_AT = 0.1


def _retention_name(config: models.Model | None) -> str:
    return "Retention policies"


@process_type(
    RETENTION,
    "Retention policies",
    config_model="compliance.RetentionSettings",
    timeout_seconds=6 * 3600,
    resolve_name=_retention_name,
)
def retention_run(ctx: JobContext) -> None:
    assert isinstance(ctx.config, RetentionSettings)
    report = retention.run(
        check=ctx.check_cancelled, progress=lambda done: ctx.progress(done, None)
    )
    ctx.info(f"Policies applied (snapshot at start): {', '.join(report.policies) or 'none'}.")
    ctx.info(f"{report.expired} expired message(s); {len(report.deleted)} deleted.")
    if report.refused:
        held = sum(1 for r in report.refused.values() if r == deletion.REASON_HOLD)
        young = len(report.refused) - held
        ctx.info(f"Kept: {held} under legal hold, {young} younger than the minimum retention.")
    ctx.check_cancelled()
    # A pack is rewritten once a tenth of it is dead: not for every single deletion.
    compacted = deletion.compact_store(min_dead_fraction=COMPACT_AT)
    ctx.info(f"Store compaction: {compacted.summary()}.")
    ctx.progress(report.expired, report.expired, force=True)


@process_type(
    EXPORT, "Compliance export", config_model="compliance.ExportJob", timeout_seconds=24 * 3600
)
def export_run(ctx: JobContext) -> None:
    assert isinstance(ctx.config, ExportJob)
    export.run_export(ctx.config, progress=ctx.progress, check=ctx.check_cancelled, log=ctx.info)


@process_type(EXPIRE_EXPORTS, "Compliance export cleanup", timeout_seconds=15 * 60)
def expire_exports(ctx: JobContext) -> None:
    """Delete the files of exports past MAILVAULT_EXPORT_EXPIRY_HOURS."""
    count = export.expire_exports()
    ctx.progress(1, 1)
    ctx.info(f"{count} expired export(s) deleted.")
