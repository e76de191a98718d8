"""What every archiving profile run shares (IMAP, POP3, Microsoft 365, folder syncs):
the run's tally, filing a batch of fetched messages, the problem log, and the guarded
delete-in-source decision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailvault.archive.filing import filed_source_refs
from mailvault.archive.models import Mailbox
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, IngestResult, Target
from mailvault.jobs.context import JobContext, JobFailed
from mailvault.sources.profiles import deletion

MAX_PROBLEM_MESSAGES = 200


class ProfileRunFailed(JobFailed):
    """The run failed; the reason is in the process log already."""


@dataclass
class RunReport:
    fetched: int = 0
    archived: int = 0
    filed: int = 0
    duplicates: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    candidates: list[deletion.Candidate] = field(default_factory=list)

    def count(self, results: list[IngestResult]) -> None:
        for result in results:
            self.archived += int(result.stored)
            if result.placements_added:
                self.filed += 1
            else:
                self.duplicates += 1


def ingest_items(
    ingestor: Ingestor,
    report: RunReport,
    mailbox: Mailbox,
    items: list[tuple[str, str, bytes]],
    source: str,
) -> None:
    """``items``: (folder path, source_ref, raw). Skips refs already filed (resumed runs)."""
    ingestor.results.clear()  # add() may flush on its own: count from the results list
    done = filed_source_refs(mailbox, [ref for _, ref, _ in items])
    for folder_path, ref, raw in items:
        report.fetched += 1
        if ref in done:
            report.skipped += 1
            continue
        ingestor.add(
            IngestRequest(
                raw=raw, source=source, targets=[Target(mailbox, folder_path)], source_ref=ref
            )
        )
    ingestor.flush()
    report.count(ingestor.results)
    ingestor.results.clear()


def failure_recorder(ctx: JobContext, report: RunReport) -> Callable[[str], None]:
    def record(text: str) -> None:
        report.failures.append(text)
        if len(report.failures) <= MAX_PROBLEM_MESSAGES:
            ctx.error(text)

    return record


def decide(ctx: JobContext, report: RunReport) -> deletion.Decision | None:
    """The guarded decision, or None (logged) when nothing may be deleted."""
    if report.failures:
        ctx.warning("Nothing is deleted in the source mailbox: the run had errors.")
        return None
    try:
        decision = deletion.decide(report.candidates)
    except deletion.DeletionGuardError as exc:
        ctx.error(f"Nothing is deleted in the source mailbox: {exc}")
        return None
    ctx.info(
        f"Delete in source: {len(decision.deletable)} verified messages to delete; kept "
        f"{decision.flagged} flagged, {decision.unverified} unverified, {decision.held} on hold."
    )
    return decision


def log_report(ctx: JobContext, report: RunReport) -> None:
    hidden = len(report.failures) - MAX_PROBLEM_MESSAGES
    if hidden > 0:
        ctx.error(f"… and {hidden} more problems.")
    ctx.progress(report.fetched, report.fetched, force=True)
    ctx.info(
        f"{report.fetched} messages fetched: {report.filed} filed into the mailbox "
        f"({report.archived} new in the archive), {report.duplicates} duplicates, "
        f"{report.skipped} already archived, {len(report.failures)} failed."
    )
