"""Archiving profiles of type Microsoft 365: every folder of one or many Exchange Online
mailboxes, through Graph (per-folder deltas with immutable ids, MIME by ``$value``).

Several mailboxes are read at the same time, each by its own thread that only talks to
Graph (never more than four requests per mailbox, the client's rule); this thread does
all database work: it ingests what the readers hand over and saves a folder's delta link
only once every message of that round is archived. A crash therefore resumes from the
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

from mailvault.archive.models import Mailbox, Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.jobs.context import JobContext
from mailvault.sources.graph import GraphClient, GraphError
from mailvault.sources.graph.discovery import tenant_id_for_domain
from mailvault.sources.graph.mailbox import JUNK_AND_DELETED, MailboxReader, MailFolder
from mailvault.sources.models_graph import GraphFolderState
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import deletion
from mailvault.sources.profiles.job import (
    BATCH_SIZE,
    ProfileRunFailed,
    RunReport,
    _failure,
    _ingest,
    _log_report,
)

PARALLEL_MAILBOXES = 8
FETCH_CHUNK = 50
QUEUE_DEPTH = 16  # chunks waiting to be ingested: bounds memory (about 16 x 50 messages)


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
    return GraphClient(tenant_id)


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
        changes = self.reader.changes(folder.id, self.links.get(folder.id, ""))
        refs = [r for r in changes.added if _in_date_range(self.profile, r.received)]
        flagged = {r.id: r.flagged for r in refs}
        for start in range(0, len(refs), FETCH_CHUNK):
            if self.stop.is_set():
                return  # the delta link is not saved: the next run reads this round again
            chunk = _Chunk(self.source, folder, [])
            for message_id, raw, why in self.reader.mime_many(
                r.id for r in refs[start : start + FETCH_CHUNK]
            ):
                if raw is None:
                    chunk.failures.append(f"{self.source.user_id} {folder.path}: {why}")
                else:
                    chunk.items.append((message_id, raw, flagged[message_id]))
            self.put(chunk)
        self.put(_FolderDone(self.source, folder, changes.delta_link, changes.resynced, len(refs)))


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


def run_m365(ctx: JobContext, profile: ArchivingProfile) -> RunReport:
    """Archive the profile's mailboxes; returns what happened (failures logged)."""
    report = RunReport()
    record_failure = _failure(ctx, report)
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
                batch_size=BATCH_SIZE, index_every=2000, index_interval_s=5.0
            ) as ingestor:
                while running:
                    item = out.get()
                    if isinstance(item, _Chunk):
                        for text in item.failures:
                            record_failure(text)
                        _ingest(
                            ingestor,
                            report,
                            item.source.mailbox,
                            [
                                (item.folder.path, f"graph:{item.source.user_id}:{mid}", raw)
                                for mid, raw, _ in item.items
                            ],
                            Message.Source.GRAPH,
                        )
                        report.candidates += [
                            deletion.Candidate(
                                item.source.user_id,
                                mid,
                                hashlib.sha256(raw).hexdigest(),
                                flagged,
                            )
                            for mid, raw, flagged in item.items
                        ]
                        ctx.progress(report.fetched)
                        ctx.check_cancelled()
                    elif isinstance(item, _FolderDone):
                        ingestor.flush()  # archived for good before the link moves on
                        _save_folder(profile, item)
                        folders_done += 1
                        if item.resynced and links.get(item.source.user_id, {}).get(item.folder.id):
                            ctx.info(
                                f"{item.source.user_id} {item.folder.path}: Graph asked for a "
                                "full resync; already archived messages were recognized."
                            )
                    elif isinstance(item, _MailboxDone):
                        running.discard(item.source.user_id)
                        if item.error:
                            record_failure(f"{item.source.user_id}: {item.error}")
                        start_next()
        finally:
            stop.set()
        stats = client.stats
        ctx.info(
            f"{folders_done} folder(s) read with {stats.requests} Graph requests; "
            f"{stats.throttled} were answered 429 and retried after the wait Graph asked for."
        )
    _log_report(ctx, report)
    return report


def delete_in_source(ctx: JobContext, profile: ArchivingProfile, report: RunReport) -> None:
    """After a successful run: delete the verified, unflagged, unheld messages in Exchange
    (each logged with its archive id). Any doubt deletes nothing."""
    from mailvault.sources.profiles.job import _decide

    decision = _decide(ctx, report)
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
