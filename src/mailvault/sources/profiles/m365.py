"""Archiving profiles of type Microsoft 365: every folder of one or many Exchange Online
mailboxes, through Graph (per-folder deltas with immutable ids, MIME by ``$value``).

Several mailboxes are read at the same time, each by its own thread that only talks to
Graph (MIME twenty messages per ``$batch``, never more than four requests per mailbox:
the client's rule); this thread does all database work: it ingests what the readers hand
over in big batches (parsed by the prepare workers meanwhile) and saves a folder's delta
link only once every message of that round is archived. A crash therefore resumes from the
previous round, and what was archived already is recognized by its source reference (the
immutable id) or, after a ``410`` resync, by its content hash: nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils import timezone

from mailvault.archive.filing import filed_source_refs
from mailvault.archive.models import Mailbox, Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.context import JobContext
from mailvault.sources.graph import GraphClient, GraphError
from mailvault.sources.graph.discovery import tenant_id_for_domain
from mailvault.sources.graph.mailbox import JUNK_AND_DELETED, MailboxReader, MailFolder
from mailvault.sources.models_graph import GraphFolderState
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import deletion
from mailvault.sources.profiles.job import BATCH_SIZE, INGEST_WORKERS
from mailvault.sources.profiles.runs import (
    ProfileRunFailed,
    RunReport,
    failure_recorder,
    log_report,
)

PARALLEL_MAILBOXES = 32  # Graph answers a mailbox slowly: many at once keep the ingester busy
FETCH_CHUNK = 100  # messages per hand-over (five $batch requests) …
CHUNK_BYTES = 4 << 20  # … or fewer when they are big
QUEUE_DEPTH = 16  # chunks waiting to be ingested: with the readers' own, memory is bounded


@dataclass(frozen=True)
class SourceMailbox:
    user_id: str  # Entra object id, or the address for a single mailbox
    mailbox: Mailbox


@dataclass
class _Chunk:
    source: SourceMailbox
    folder: MailFolder
    items: list[tuple[str, bytes, bool]]  # (message id, raw, flagged)
    failures: list[str] = field(default_factory=list)


@dataclass
class _FolderDone:
    source: SourceMailbox
    folder: MailFolder
    delta_link: str
    resynced: bool
    count: int


@dataclass
class _MailboxDone:
    source: SourceMailbox
    error: str = ""


def _client(profile: ArchivingProfile) -> GraphClient:
    tenant_id = profile.entra_tenant_id
    if not tenant_id and profile.directory_service is not None:
        tenant_id = profile.directory_service.entra_tenant_id
    if not tenant_id and profile.mode == ArchivingProfile.Mode.SINGLE and "@" in profile.address:
        # A single mailbox: its domain names the tenant (remembered for the next runs).
        try:
            tenant_id = tenant_id_for_domain(profile.address.rsplit("@", 1)[1])
        except GraphError as exc:
            raise ProfileRunFailed(f"{profile.name}: {exc}") from exc
        ArchivingProfile.objects.filter(pk=profile.pk).update(entra_tenant_id=tenant_id)
    if not tenant_id:
        raise ProfileRunFailed(
            f"{profile.name}: no Microsoft 365 tenant is connected. Connect the tenant in the "
            "directory service (admin consent) first."
        )
    try:
        return GraphClient(tenant_id)
    except GraphError as exc:  # no token provider: the authority is unreachable or unknown
        raise ProfileRunFailed(f"{profile.name}: {exc}") from exc


def source_mailboxes(profile: ArchivingProfile) -> list[SourceMailbox]:
    """The single mailbox, or every synchronized user with a mailbox of the directory."""
    if profile.mode == ArchivingProfile.Mode.SINGLE:
        if profile.mailbox is None or not profile.address:
            raise ProfileRunFailed(f"{profile.name}: the mailbox to archive is not set.")
        return [SourceMailbox(profile.address, profile.mailbox)]
    from mailvault.directory.models import SyncedObject

    if profile.directory_service is None:
        raise ProfileRunFailed(f"{profile.name}: choose the directory service of the mailboxes.")
    synced = SyncedObject.objects.filter(
        service=profile.directory_service,
        kind=SyncedObject.Kind.USER,
        mailbox__isnull=False,
    ).select_related("mailbox")
    return [SourceMailbox(s.external_id, s.mailbox) for s in synced if s.mailbox is not None]


def _wanted(profile: ArchivingProfile, folders: list[MailFolder]) -> list[MailFolder]:
    skipped_ids = (
        {f.id for f in folders if f.well_known in JUNK_AND_DELETED}
        if profile.skip_junk_trash
        else set()
    )
    by_id = {f.id: f for f in folders}

    def under_skipped(folder: MailFolder) -> bool:
        while folder.id:
            if folder.id in skipped_ids:
                return True
            parent = by_id.get(folder.parent_id)
            if parent is None:
                return False
            folder = parent
        return False

    def matches(path: str, patterns: list[str]) -> bool:
        path = path.casefold()
        return any(path == p.casefold() or path.startswith(p.casefold() + "/") for p in patterns)

    chosen = []
    for folder in folders:
        if under_skipped(folder):
            continue
        if profile.included and not matches(folder.path, profile.included):
            continue
        if profile.excluded and matches(folder.path, profile.excluded):
            continue
        chosen.append(folder)
    return chosen


def _in_date_range(profile: ArchivingProfile, received: str) -> bool:
    if not (profile.older_than or profile.newer_than) or not received:
        return True
    try:
        day: date = datetime.fromisoformat(received.replace("Z", "+00:00")).date()
    except ValueError:
        return True  # archive rather than lose it
    if profile.older_than and day >= profile.older_than:
        return False
    return not (profile.newer_than and day < profile.newer_than)


class _Reader(threading.Thread):
    """Reads one mailbox and hands chunks to the ingesting thread through ``out``."""

    def __init__(
        self,
        client: GraphClient,
        profile: ArchivingProfile,
        source: SourceMailbox,
        links: dict[str, str],
        out: queue.Queue[object],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"m365-{source.user_id[:12]}", daemon=True)
        self.reader = MailboxReader(client, source.user_id)
        self.profile = profile
        self.source = source
        self.links = links  # folder id -> saved delta link (read before the thread starts)
        self.out = out
        self.stop = stop

    def put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            folders = _wanted(self.profile, self.reader.folders(well_known=JUNK_AND_DELETED))
            for folder in folders:
                if self.stop.is_set():
                    break
                self._folder(folder)
        except Exception as exc:  # GraphError, or a bug: the run must not wait for ever
            self.put(_MailboxDone(self.source, error=str(exc) or type(exc).__name__))
            return
        self.put(_MailboxDone(self.source))

    def _folder(self, folder: MailFolder) -> None:
        """One folder's round, a delta page at a time (memory stays flat however big the
        folder); the delta link is handed over last, after every message of the round."""
        delta_link, resynced, count, failed = "", False, 0, False
        for page in self.reader.change_pages(folder.id, self.links.get(folder.id, "")):
            if page.restarted:
                count = 0  # a 410: read again from the start (what was filed is recognized)
            resynced = resynced or page.resynced
            delta_link = page.delta_link or delta_link
            refs = [r for r in page.added if _in_date_range(self.profile, r.received)]
            count += len(refs)
            flagged = {r.id: r.flagged for r in refs}
            chunk, size = _Chunk(self.source, folder, []), 0
            for message_id, raw, why in self.reader.mime_of(refs):
                if raw is None:
                    chunk.failures.append(f"{self.source.user_id} {folder.path}: {why}")
                    failed = True
                else:
                    chunk.items.append((message_id, raw, flagged[message_id]))
                    size += len(raw)
                if len(chunk.items) + len(chunk.failures) >= FETCH_CHUNK or size >= CHUNK_BYTES:
                    self.put(chunk)
                    chunk, size = _Chunk(self.source, folder, []), 0
                if self.stop.is_set():
                    return  # the delta link is not saved: the next run reads this round again
            if chunk.items or chunk.failures:
                self.put(chunk)
        if failed:
            # Keep the old link: the next run reads this round again and fetches what
            # failed now (what was filed is recognized by its reference).
            delta_link = self.links.get(folder.id, "")
        self.put(_FolderDone(self.source, folder, delta_link, resynced, count))


def _links(profile: ArchivingProfile) -> dict[str, dict[str, str]]:
    links: dict[str, dict[str, str]] = {}
    for state in GraphFolderState.objects.filter(profile=profile):
        links.setdefault(state.user_id, {})[state.folder_id] = state.delta_link
    return links


def _save_folder(profile: ArchivingProfile, done: _FolderDone) -> None:
    state, _ = GraphFolderState.objects.get_or_create(
        profile=profile, user_id=done.source.user_id, folder_id=done.folder.id
    )
    state.folder_path = done.folder.path
    state.delta_link = done.delta_link
    state.message_count += done.count
    state.updated_at = timezone.now()
    state.save()


def _add(ingestor: Ingestor, report: RunReport, chunk: _Chunk, *, keep_candidates: bool) -> int:
    """Queue a chunk for ingestion, leaving out what an earlier (crashed) run filed;
    how many were queued."""
    user_id = chunk.source.user_id
    refs = [f"graph:{user_id}:{mid}" for mid, _raw, _flagged in chunk.items]
    done = filed_source_refs(chunk.source.mailbox, refs)
    queued = 0
    target = [Target(chunk.source.mailbox, chunk.folder.path)]
    for ref, (mid, raw, flagged) in zip(refs, chunk.items, strict=True):
        report.fetched += 1
        if keep_candidates:  # only "delete in source" needs them: memory stays flat
            report.candidates.append(
                deletion.Candidate(user_id, mid, hashlib.sha256(raw).hexdigest(), flagged)
            )
        if ref in done:
            report.skipped += 1
            continue
        ingestor.add(
            IngestRequest(raw=raw, source=Message.Source.GRAPH, targets=target, source_ref=ref)
        )
        queued += 1
    return queued


def run_m365(ctx: JobContext, profile: ArchivingProfile) -> RunReport:
    """Archive the profile's mailboxes; returns what happened (failures logged)."""
    report = RunReport()
    record_failure = failure_recorder(ctx, report)
    sources = source_mailboxes(profile)
    if not sources:
        ctx.warning(f"{profile.name}: there is no mailbox to archive yet (sync the directory).")
        return report
    ctx.info(f"Archiving {len(sources)} Microsoft 365 mailbox(es).")
    links = _links(profile)
    out: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    pending = iter(sources)
    running: set[str] = set()
    folders_done = 0
    with _client(profile) as client:
        try:
            client.tokens.token()  # no token, no run: say why once, not per mailbox
        except GraphError as exc:
            raise ProfileRunFailed(str(exc)) from exc

        def start_next() -> bool:
            source = next(pending, None)
            if source is None:
                return False
            running.add(source.user_id)
            _Reader(client, profile, source, links.get(source.user_id, {}), out, stop).start()
            return True

        for _ in range(PARALLEL_MAILBOXES):
            if not start_next():
                break
        try:
            with Ingestor(
                batch_size=BATCH_SIZE * 4,  # submit() below hands over every BATCH_SIZE
                index_every=5000,
                index_interval_s=15.0,
                workers=INGEST_WORKERS,
            ) as ingestor:
                # Folders read to the end wait for their messages to be recorded before
                # their delta links are saved: those done before the last submit() had all
                # their messages in the batch that the next submit() (or flush) records.
                done_now: list[_FolderDone] = []
                done_inflight: list[_FolderDone] = []

                def settle(finish: bool = False) -> None:
                    """Hand over what is queued (or finish everything); count the results
                    (those of a flush add() did on its own too); save the links that are
                    safe to save."""
                    nonlocal done_now, done_inflight, folders_done
                    ingestor.flush() if finish else ingestor.submit()
                    report.count(ingestor.results)
                    ingestor.results.clear()
                    safe = done_inflight + done_now if finish else done_inflight
                    done_inflight, done_now = ([], []) if finish else (done_now, [])
                    for done in safe:
                        _save_folder(profile, done)
                        folders_done += 1
                        if done.resynced and links.get(done.source.user_id, {}).get(done.folder.id):
                            ctx.info(
                                f"{done.source.user_id} {done.folder.path}: Graph asked for a "
                                "full resync; already archived messages were recognized."
                            )

                queued = 0
                while running:
                    item = out.get()
                    if isinstance(item, _Chunk):
                        for text in item.failures:
                            record_failure(text)
                        queued += _add(
                            ingestor, report, item, keep_candidates=profile.delete_in_source
                        )
                        if queued >= BATCH_SIZE:
                            settle()
                            queued = 0
                        ctx.progress(report.fetched)
                        ctx.check_cancelled()
                    elif isinstance(item, _FolderDone):
                        done_now.append(item)
                    elif isinstance(item, _MailboxDone):
                        running.discard(item.source.user_id)
                        if item.error:
                            record_failure(f"{item.source.user_id}: {item.error}")
                        start_next()
                settle(finish=True)
        finally:
            stop.set()
        stats = client.stats
        ctx.info(
            f"{folders_done} folder(s) read with {stats.requests} Graph requests; "
            f"{stats.throttled} were answered 429 and retried after the wait Graph asked for "
            f"({stats.batched} of the requests were sent inside $batch requests)."
        )
    log_report(ctx, report)
    return report


def delete_in_source(ctx: JobContext, profile: ArchivingProfile, report: RunReport) -> None:
    """After a successful run: delete the verified, unflagged, unheld messages in Exchange
    (each logged with its archive id). Any doubt deletes nothing."""
    from mailvault.sources.profiles.runs import decide

    decision = decide(ctx, report)
    if decision is None:
        return
    with _client(profile) as client:
        readers: dict[str, MailboxReader] = {}
        for candidate, message_id in decision.deletable:
            reader = readers.setdefault(
                candidate.folder_key, MailboxReader(client, candidate.folder_key)
            )
            try:
                reader.delete(candidate.source_id)
            except GraphError as exc:
                ctx.error(f"Deleting in {candidate.folder_key} failed (kept): {exc}")
                continue
            ctx.info(
                f"Deleted in the source mailbox {candidate.folder_key}: message "
                f"{candidate.source_id} (archive id {message_id})."
            )
