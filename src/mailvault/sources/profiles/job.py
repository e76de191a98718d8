"""The ``sources.archiving_profile`` job: archive an IMAP or POP3 mailbox (POP3 in
``pop3.py``, Microsoft 365 in ``m365.py``), then (when configured and everything
succeeded) delete the verified copies in the source."""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections import deque
from dataclasses import dataclass

from django.utils import timezone

from mailvault.archive.filing import filed_source_refs
from mailvault.archive.models import Mailbox, Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.context import JobContext
from mailvault.jobs.registry import process_type
from mailvault.sources.imap import (
    Fetched,
    FetchedBatch,
    FolderGone,
    FolderInfo,
    FolderState,
    ImapError,
    ImapLoginError,
    ImapSession,
    UidValidityChanged,
)
from mailvault.sources.imap.prefetch import Batch, FolderDone, Notice, Prefetcher
from mailvault.sources.models_profiles import ArchivingProfile, FolderSyncState
from mailvault.sources.profiles import deletion
from mailvault.sources.profiles.oauth import OAuthError
from mailvault.sources.profiles.pop3 import run_pop3
from mailvault.sources.profiles.runs import (
    ProfileRunFailed,
    RunReport,
    decide,
    failure_recorder,
    log_report,
)
from mailvault.sources.profiles.services import PROCESS_TYPE, connection_settings

BATCH_SIZE = 500  # UIDs per FETCH (at most FETCH_MAX_BYTES), messages per ingestion batch
# A folder's sync state is saved at most this often while it is archived (and at the
# end); a run that dies fetches the rest again and skips what it had filed.
STATE_SAVE_INTERVAL_S = 2.0
# Processes that parse and prepare fetched messages in parallel (as File Import does).
INGEST_WORKERS = min(2, os.cpu_count() or 1)
# Waits before reconnecting after a dropped connection: RETRY_BACKOFF_S, then x2, x4.
RETRY_BACKOFF_S = 1.0


# --- IMAP ------------------------------------------------------------------------------


def _oauth_token(profile: ArchivingProfile, ctx: JobContext) -> str:
    from mailvault.sources.imap.server import oauth_token

    try:
        return oauth_token(profile)
    except OAuthError as exc:
        ctx.error(str(exc))
        raise ProfileRunFailed(str(exc)) from exc


@dataclass
class _Accepted:
    """A fetched batch (or a folder's end) of which the folder's sync state is saved once
    the pipeline recorded it (and everything before it)."""

    row: FolderSyncState
    uidvalidity: int
    last_uid: int
    messages: int = 0
    handed: bool = False  # handed to the ingestor: recorded at a later submit or flush
    done: bool = False  # the folder's end: its HIGHESTMODSEQ is saved too
    highest_modseq: int | None = None


class _ImapArchiver:
    """Archives the batches the fetch thread hands over. The pipeline records a batch
    while its workers prepare the next one (``Ingestor.submit``), so a folder's
    ``last_uid`` is saved only once everything up to it is recorded: a run that dies
    fetches the rest again, and a resumed run skips what was filed meanwhile."""

    def __init__(
        self,
        ctx: JobContext,
        profile: ArchivingProfile,
        mailbox: Mailbox,
        ingestor: Ingestor,
        report: RunReport,
        rows: dict[str, FolderSyncState],
    ) -> None:
        self.ctx, self.profile, self.mailbox = ctx, profile, mailbox
        self.ingestor, self.report, self.rows = ingestor, report, rows
        self.pending: deque[_Accepted] = deque()
        self.inflight: _Accepted | None = None
        self.touched: dict[int, FolderSyncState] = {}
        self.saved_at = time.monotonic()
        # Folders whose next UIDs may have been filed by a run that died before saving
        # its state: their refs are looked up until a batch has one not filed (batches
        # are recorded in UID order, so what such a run filed is a run of UIDs).
        self.checking = set(rows)

    def batch(self, folder: FolderInfo, batch: FetchedBatch) -> None:
        report, mailbox = self.report, self.mailbox
        report.fetched += len(batch)
        refs = [_imap_ref(self.profile, m) for m in batch]
        done: set[str] = set()
        if folder.path in self.checking and refs:
            done = filed_source_refs(mailbox, refs)
            if len(done) < len(refs):
                self.checking.discard(folder.path)
        handed = False
        for message, ref in zip(batch, refs, strict=True):
            if ref in done:
                report.skipped += 1
                continue
            self.ingestor.add(
                IngestRequest(
                    raw=message.raw,
                    source=Message.Source.IMAP,
                    targets=[Target(mailbox, folder.path)],
                    source_ref=ref,
                )
            )
            handed = True
        if self.profile.delete_in_source:
            report.candidates += [_candidate(m) for m in batch]
        row = self.rows[folder.path]
        entry = _Accepted(row, batch.uidvalidity, batch.up_to, len(batch), handed)
        self.pending.append(entry)
        self.ingestor.submit()  # records the batch handed over before this one
        self.inflight = entry if handed and self.ingestor.workers else None
        self._count()
        self._save()
        self.ctx.progress(report.fetched)

    def folder_done(self, folder: FolderInfo, state: FolderState) -> None:
        row = self.rows[folder.path]
        self.pending.append(
            _Accepted(
                row,
                state.uidvalidity,
                state.last_uid,
                done=True,
                highest_modseq=state.highest_modseq,
            )
        )
        self._save()

    def finish(self) -> None:
        """Record what was handed over, make it searchable, save every folder's state."""
        self.ingestor.flush()
        self.inflight = None
        self._count()
        self._save(now=True)
        self.ingestor.commit_index()

    def _count(self) -> None:
        self.report.count(self.ingestor.results)
        self.ingestor.results.clear()

    def _save(self, *, now: bool = False) -> None:
        """Advance the state of the folders whose batches are recorded (in order); save
        it every STATE_SAVE_INTERVAL_S (``now``: at once)."""
        touched = self.touched
        while self.pending and self.pending[0] is not self.inflight:
            entry = self.pending.popleft()
            row = entry.row
            if row.uidvalidity != entry.uidvalidity:
                row.highest_modseq = None  # read again from the start: not unchanged
            row.uidvalidity, row.last_uid = entry.uidvalidity, entry.last_uid
            row.message_count += entry.messages
            if entry.done:
                row.highest_modseq = entry.highest_modseq
            touched[row.pk] = row
        if not now and time.monotonic() - self.saved_at < STATE_SAVE_INTERVAL_S:
            return
        at = timezone.now()
        for row in touched.values():
            row.updated_at = at
            row.save()
        touched.clear()
        self.saved_at = time.monotonic()


def _archive_folders(
    ctx: JobContext,
    session: ImapSession,
    profile: ArchivingProfile,
    mailbox: Mailbox,
    folders: list[FolderInfo],
    report: RunReport,
) -> None:
    """Fetch (in a thread) and archive the new messages of ``folders``."""
    rows = {
        folder.path: FolderSyncState.objects.get_or_create(
            profile=profile, source_mailbox=profile.address, folder=folder.path
        )[0]
        for folder in folders
    }
    start = [
        (
            f,
            FolderState(
                rows[f.path].uidvalidity, rows[f.path].last_uid, rows[f.path].highest_modseq
            ),
        )
        for f in folders
    ]
    failure = failure_recorder(ctx, report)
    with (
        Ingestor(
            batch_size=2 * BATCH_SIZE,  # never reached: the batches are handed over here
            index_every=5000,
            index_interval_s=15.0,
            workers=INGEST_WORKERS,
            keep_results=True,
        ) as ingestor,
        Prefetcher(
            session,
            start,
            batch_size=BATCH_SIZE,
            newer_than=profile.newer_than,
            older_than=profile.older_than,
        ) as prefetcher,
    ):
        archiver = _ImapArchiver(ctx, profile, mailbox, ingestor, report, rows)
        for event in prefetcher:
            if isinstance(event, Batch):
                archiver.batch(event.folder, event.messages)
            elif isinstance(event, FolderDone):
                archiver.folder_done(event.folder, event.state)
            elif isinstance(event, Notice):
                (failure if event.problem else ctx.warning)(event.text)
            elif isinstance(event.error, FolderGone):
                ctx.warning(f"{event.error} It is skipped.")
            elif isinstance(event.error, ImapLoginError):
                archiver.finish()
                ctx.error(str(event.error))
                raise ProfileRunFailed(str(event.error)) from event.error
            else:
                failure(f"{event.folder.path}: {event.error}")
            try:
                ctx.check_cancelled()
            except BaseException:
                archiver.finish()  # what was fetched is archived; the next run goes on
                raise
        archiver.finish()


def _candidate(message: Fetched) -> deletion.Candidate:
    sha = hashlib.sha256(message.raw).hexdigest()
    return deletion.Candidate(
        message.folder.name, str(message.uid), sha, message.flagged, message.uidvalidity
    )


def _imap_ref(profile: ArchivingProfile, message: Fetched) -> str:
    return f"imap:{profile.address}:{message.folder.path}:{message.uidvalidity}:{message.uid}"


def _run_imap(ctx: JobContext, profile: ArchivingProfile, mailbox: Mailbox) -> RunReport:
    report = RunReport()
    settings = connection_settings(profile, oauth_token=_oauth_token(profile, ctx))
    with ImapSession(settings, on_retry=ctx.warning, backoff_s=RETRY_BACKOFF_S) as session:
        try:
            folders = session.folders(
                include=profile.included,
                exclude=profile.excluded,
                skip_junk_trash=profile.skip_junk_trash,
            )
        except ImapError as exc:  # ImapLoginError included: a clear sign-in message
            ctx.error(str(exc))
            raise ProfileRunFailed(str(exc)) from exc
        ctx.info(f"{len(folders)} folders to archive: {', '.join(f.path for f in folders)}.")
        _vanished_folders(ctx, session, profile, folders)
        by_name = {f.name: f for f in folders}
        _archive_folders(ctx, session, profile, mailbox, folders, report)
        log_report(ctx, report)
        if profile.delete_in_source and not report.failures:
            _earlier_imap(ctx, session, profile, report, folders)
        if profile.delete_in_source:
            _delete_imap(ctx, session, report, by_name)
    return report


def _vanished_folders(
    ctx: JobContext, session: ImapSession, profile: ArchivingProfile, folders: list[FolderInfo]
) -> None:
    """Say which folders earlier runs archived are gone from the server (deleted or
    renamed there); their sync state goes, so a folder made again is read afresh."""
    chosen = {f.path for f in folders}
    states = FolderSyncState.objects.filter(profile=profile, source_mailbox=profile.address)
    missing = [path for path in states.values_list("folder", flat=True) if path not in chosen]
    if not missing:
        return
    try:
        on_server = {f.path for f in session.folders(include=[], exclude=[], skip_junk_trash=False)}
    except ImapError:
        return  # the folders to archive were listed; the run goes on
    for path in missing:
        if path not in on_server:
            ctx.warning(
                f"The folder {path}, archived by earlier runs, is no longer on the server; "
                "its archived messages stay in the archive."
            )
            states.filter(folder=path).delete()


def _run_imap_multiple(ctx: JobContext, profile: ArchivingProfile) -> RunReport:
    """Every archive mailbox of the directory service's users, each opened by the master
    user of the profile's secret; one mailbox failing does not stop the others."""
    from mailvault.directory.services import users_of

    service = profile.directory_service
    if service is None:
        text = f"{profile.name} has no directory service."
        ctx.error(text)
        raise ProfileRunFailed(text)
    mailboxes = list(
        Mailbox.objects.filter(owner__in=users_of(service)).order_by("primary_address")
    )
    ctx.info(f"{len(mailboxes)} mailboxes of the directory service {service.name}.")
    total = RunReport()
    for mailbox in mailboxes:
        one = copy.copy(profile)  # never saved: the mailbox's address for state and refs
        one.address, one.mailbox = mailbox.primary_address, mailbox
        ctx.info(f"Archiving {one.address} from {profile.host}.")
        try:
            report = _run_imap(ctx, one, mailbox)
        except ProfileRunFailed as exc:  # logged already; the next mailbox goes on
            total.failures.append(str(exc))
            continue
        if report.filed:
            Mailbox.objects.filter(pk=mailbox.pk).update(last_import_at=timezone.now())
        total.fetched += report.fetched
        total.filed += report.filed
        total.failures += report.failures
    if len(mailboxes) > 1:
        ctx.info(
            f"{len(mailboxes)} mailboxes: {total.fetched} messages fetched, {total.filed} "
            f"filed, {len(total.failures)} failed."
        )
    return total


def _earlier_imap(
    ctx: JobContext,
    session: ImapSession,
    profile: ArchivingProfile,
    report: RunReport,
    folders: list[FolderInfo],
) -> None:
    """Add the messages earlier runs archived (delete in source was off then, or that run
    had errors) to the candidates, fetched again: the check compares what the server
    holds now with the archived bytes."""
    this_run: dict[str, set[int]] = {}
    for candidate in report.candidates:
        this_run.setdefault(candidate.folder_key, set()).add(int(candidate.source_id))
    states = {
        row.folder: row
        for row in FolderSyncState.objects.filter(profile=profile, source_mailbox=profile.address)
    }
    for folder in folders:
        state = states.get(folder.path)
        if state is None or not state.last_uid:
            continue
        try:
            for batch in session.archived_earlier(
                folder,
                state.last_uid,
                this_run.get(folder.name, set()),
                newer_than=profile.newer_than,
                older_than=profile.older_than,
                batch_size=BATCH_SIZE,
                on_problem=ctx.warning,
            ):
                report.candidates += [_candidate(m) for m in batch]
        except ImapError as exc:
            ctx.warning(f"{folder.path}: earlier messages are not deleted this time: {exc}")


def _delete_imap(
    ctx: JobContext, session: ImapSession, report: RunReport, by_name: dict[str, FolderInfo]
) -> None:
    decision = decide(ctx, report)
    if decision is None:
        return
    # UIDs name messages only under the UIDVALIDITY they were fetched with: a folder
    # recreated since then is left alone (the next run reads it again).
    per_folder: dict[tuple[str, int], list[tuple[deletion.Candidate, int]]] = {}
    for candidate, message_id in decision.deletable:
        key = (candidate.folder_key, candidate.uidvalidity)
        per_folder.setdefault(key, []).append((candidate, message_id))
    for (name, uidvalidity), items in per_folder.items():
        folder = by_name[name]
        try:
            deleted = set(
                session.delete(
                    folder,
                    [int(c.source_id) for c, _ in items],
                    uidvalidity=uidvalidity,
                    keep_flagged=True,
                )
            )
        except UidValidityChanged as exc:
            ctx.warning(f"{exc} The next run reads the folder again.")
            continue
        except ImapError as exc:
            ctx.error(f"Deleting in {folder.path} failed; nothing there was deleted: {exc}")
            continue
        for candidate, message_id in items:
            if int(candidate.source_id) not in deleted:
                continue  # flagged meanwhile, or already gone
            ctx.info(
                f"Deleted in the source mailbox: {folder.path} UID {candidate.source_id} "
                f"(archive id {message_id})."
            )


# --- the job ---------------------------------------------------------------------------


@process_type(
    PROCESS_TYPE,
    "Archiving profile",
    config_model="sources.ArchivingProfile",
    timeout_seconds=12 * 3600,
)
def archiving_profile(ctx: JobContext) -> None:
    profile = ctx.config
    assert isinstance(profile, ArchivingProfile)
    if profile.type == ArchivingProfile.Type.M365:
        from mailvault.sources.profiles import m365

        try:
            report = m365.run_m365(ctx, profile)
        except ProfileRunFailed as exc:
            ctx.error(str(exc))
            raise
        if report.failures:
            return  # finished with errors (logged): not a success, nothing deleted
        if profile.delete_in_source:
            m365.delete_in_source(ctx, profile, report)
        ArchivingProfile.objects.filter(pk=profile.pk).update(last_success_at=timezone.now())
        return
    if (
        profile.type == ArchivingProfile.Type.IMAP
        and profile.mode == ArchivingProfile.Mode.MULTIPLE
    ):
        report = _run_imap_multiple(ctx, profile)
        if not report.failures:
            ArchivingProfile.objects.filter(pk=profile.pk).update(last_success_at=timezone.now())
        return
    mailbox = profile.mailbox
    if profile.mode != ArchivingProfile.Mode.SINGLE or mailbox is None:
        text = f"{profile.name}: {profile.get_type_display()} archives single mailboxes only."
        ctx.error(text)
        raise ProfileRunFailed(text)
    ctx.info(
        f"Archiving {profile.address} ({profile.get_type_display()} {profile.host}) into "
        f"{mailbox.primary_address}."
    )
    run = _run_imap if profile.type == ArchivingProfile.Type.IMAP else run_pop3
    report = run(ctx, profile, mailbox)
    if report.filed:
        Mailbox.objects.filter(pk=mailbox.pk).update(last_import_at=timezone.now())
    if report.failures:
        # Finished with errors (they are in the log): not a success, nothing deleted.
        return
    ArchivingProfile.objects.filter(pk=profile.pk).update(last_success_at=timezone.now())
