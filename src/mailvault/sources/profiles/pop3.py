"""POP3 archiving profiles: fetch by UIDL, file into the mailbox's Inbox, and delete in
the source (marked, then QUIT) only what the guard allows."""

from __future__ import annotations

import hashlib

from mailvault.archive.models import Mailbox, Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.jobs.context import JobContext
from mailvault.sources.models_profiles import ArchivingProfile, Pop3SeenUidl
from mailvault.sources.pop3 import Pop3Error, Pop3Session
from mailvault.sources.profiles import deletion
from mailvault.sources.profiles.runs import (
    ProfileRunFailed,
    RunReport,
    decide,
    failure_recorder,
    ingest_items,
    log_report,
)
from mailvault.sources.profiles.services import connection_settings

BATCH_SIZE = 500  # messages per ingestion batch


def run_pop3(ctx: JobContext, profile: ArchivingProfile, mailbox: Mailbox) -> RunReport:
    report = RunReport()
    settings = connection_settings(profile)
    try:
        session = Pop3Session(settings)
    except Pop3Error as exc:
        ctx.error(str(exc))
        raise ProfileRunFailed(str(exc)) from exc
    try:
        seen = set(
            Pop3SeenUidl.objects.filter(
                profile=profile, source_mailbox=profile.address
            ).values_list("uidl", flat=True)
        )
        numbers = {uidl: number for number, uidl in session.uidls()}
        pending: list[tuple[str, str, bytes]] = []
        uidls: list[tuple[str, str]] = []
        with Ingestor(batch_size=BATCH_SIZE) as ingestor:

            def flush() -> None:
                ingest_items(ingestor, report, mailbox, pending, Message.Source.POP3)
                Pop3SeenUidl.objects.bulk_create(
                    [
                        Pop3SeenUidl(
                            profile=profile, source_mailbox=profile.address, uidl=u, sha256=s
                        )
                        for u, s in uidls
                    ],
                    ignore_conflicts=True,
                )
                pending.clear()
                uidls.clear()
                ctx.progress(report.fetched)
                ctx.check_cancelled()

            try:
                for message in session.messages(
                    seen,
                    newer_than=profile.newer_than,
                    older_than=profile.older_than,
                    on_problem=failure_recorder(ctx, report),
                ):
                    sha = hashlib.sha256(message.raw).hexdigest()
                    ref = f"pop3:{profile.address}:{message.uidl}"
                    pending.append(("Inbox", ref, message.raw))
                    uidls.append((message.uidl, sha))
                    report.candidates.append(deletion.Candidate("", message.uidl, sha))
                    if len(pending) >= BATCH_SIZE:
                        flush()
            except (Pop3Error, OSError):
                flush()  # the messages fetched whole before the connection broke
                raise
            flush()
        log_report(ctx, report)
        if profile.delete_in_source:
            report.candidates += _earlier_pop3(profile, numbers, report)
            decision = decide(ctx, report)
            if decision is not None and decision.deletable:
                session.delete([numbers[c.source_id] for c, _ in decision.deletable])
                _quit_deleting(ctx, session, decision)
                return report
        session.quit()
    except (Pop3Error, OSError) as exc:
        session.abort()  # without QUIT, the server deletes nothing
        ctx.error(f"The POP3 session failed: {exc}")
        raise ProfileRunFailed(str(exc)) from exc
    return report


def _quit_deleting(ctx: JobContext, session: Pop3Session, decision: deletion.Decision) -> None:
    """QUIT, which makes the marked deletions happen. A QUIT without an answer may or
    may not have deleted them (each has a verified archived copy): logged as such."""
    confirmed = ""
    try:
        session.quit()
    except (Pop3Error, OSError) as exc:
        session.abort()
        confirmed = " (not confirmed)"
        ctx.warning(
            f"The POP3 server did not confirm QUIT ({exc}): the {len(decision.deletable)} "
            "messages marked for deletion may or may not be deleted; each has a verified "
            "archived copy, and the next run deletes those still there."
        )
    for candidate, message_id in decision.deletable:
        ctx.info(
            f"Deleted in the source mailbox{confirmed}: POP3 message {candidate.source_id} "
            f"(archive id {message_id})."
        )


def _earlier_pop3(
    profile: ArchivingProfile, numbers: dict[str, int], report: RunReport
) -> list[deletion.Candidate]:
    """Messages archived by earlier runs and still on the server (delete in source was
    off then, or that run had errors): their fetched hash was recorded when fetched."""
    this_run = {c.source_id for c in report.candidates}
    left = [uidl for uidl in numbers if uidl not in this_run]
    found: list[deletion.Candidate] = []
    for start in range(0, len(left), 500):
        rows = Pop3SeenUidl.objects.filter(
            profile=profile, source_mailbox=profile.address, uidl__in=left[start : start + 500]
        ).values_list("uidl", "sha256")
        found += [deletion.Candidate("", uidl, sha) for uidl, sha in rows]
    return found
