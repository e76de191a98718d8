"""The ``sources.folder_sync`` job: mirror Microsoft 365 mailbox folders into the archive.

For each user's mailbox and each folder, the Graph delta since the last run tells which
messages arrived or moved there. A message the archive knows by its immutable id (archived
by a profile or an earlier sync) is moved to that folder; an unknown one is fetched and
matched by content, so a journaled copy gets its folder instead of being stored twice, and
only what the archive lacks is archived. Renamed folders are renamed in the archive. A
folder's delta link is saved only after all of its changes were applied. Afterwards, if
configured and the run had no error, verified copies are deleted in the mailbox.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from mailvault.archive.filing import place, rename_folder
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.reconcile import reindex_messages
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.context import JobContext, JobFailed
from mailvault.jobs.registry import process_type
from mailvault.sources.foldersync.services import PROCESS_TYPE
from mailvault.sources.graph import GraphClient, GraphError
from mailvault.sources.graph.discovery import tenant_id_for_domain
from mailvault.sources.graph.mailbox import MailboxReader, MailFolder, MessageRef
from mailvault.sources.models_foldersync import FolderSynchronization, SyncedFolder
from mailvault.sources.profiles import deletion

if TYPE_CHECKING:
    from mailvault.sources.profiles.runs import RunReport

FS = FolderSynchronization
FETCH_CHUNK = 50
HIDDEN = ("recoverableitemsdeletions",)
MAX_PROBLEM_MESSAGES = 200


class FolderSyncFailed(JobFailed):
    """The run failed; the reason is in the process log already."""


@dataclass(frozen=True)
class Source:
    user_id: str
    mailbox: Mailbox


@dataclass
class SyncReport:
    placed: int = 0  # messages given (or moved to) their folder
    archived: int = 0  # messages the archive lacked
    renamed: int = 0
    failures: list[str] = field(default_factory=list)
    moved_ids: set[int] = field(default_factory=set)


def _ref(user_id: str, message_id: str) -> str:
    return f"graph:{user_id}:{message_id}"


def _sources(sync: FolderSynchronization) -> list[Source]:
    if sync.mode == FS.Mode.SINGLE:
        if sync.mailbox is None:
            raise FolderSyncFailed(f"{sync.name}: the mailbox is not set.")
        return [Source(sync.address, sync.mailbox)]
    from mailvault.directory.models import SyncedObject

    synced = SyncedObject.objects.filter(
        service=sync.directory_service, kind=SyncedObject.Kind.USER, mailbox__isnull=False
    ).select_related("mailbox")
    return [
        Source(s.external_id, s.mailbox)
        for s in synced
        if s.mailbox is not None and s.mailbox.kind != Mailbox.Kind.JOURNAL
    ]


def _client(sync: FolderSynchronization) -> GraphClient:
    tenant_id = sync.entra_tenant_id or (
        sync.directory_service.entra_tenant_id if sync.directory_service else ""
    )
    if not tenant_id and sync.mode == FS.Mode.SINGLE and "@" in sync.address:
        # A single mailbox: its domain names the tenant (remembered for the next runs).
        try:
            tenant_id = tenant_id_for_domain(sync.address.rsplit("@", 1)[1])
        except GraphError as exc:
            raise FolderSyncFailed(f"{sync.name}: {exc}") from exc
        FolderSynchronization.objects.filter(pk=sync.pk).update(entra_tenant_id=tenant_id)
    if not tenant_id:
        raise FolderSyncFailed(
            f"{sync.name}: no Microsoft 365 tenant is connected (admin consent in the directory "
            "service)."
        )
    try:
        return GraphClient(tenant_id)
    except GraphError as exc:  # no token provider: the authority is unreachable or unknown
        raise FolderSyncFailed(f"{sync.name}: {exc}") from exc


class _MailboxSync:
    def __init__(
        self,
        ctx: JobContext,
        sync: FolderSynchronization,
        reader: MailboxReader,
        source: Source,
        ingestor: Ingestor,
        report: SyncReport,
    ) -> None:
        self.ctx, self.sync, self.reader = ctx, sync, reader
        self.source, self.ingestor, self.report = source, ingestor, report

    def failure(self, text: str) -> None:
        self.report.failures.append(text)
        if len(self.report.failures) <= MAX_PROBLEM_MESSAGES:
            self.ctx.error(text)

    def run(self) -> None:
        folders = [f for f in self.reader.folders(well_known=HIDDEN) if f.well_known not in HIDDEN]
        states = {
            s.folder_id: s
            for s in SyncedFolder.objects.filter(sync=self.sync, user_id=self.source.user_id)
        }
        for folder in folders:  # renames first, so that deltas land in the right place
            state = states.get(folder.id)
            if state is not None and state.path and state.path != folder.path:
                moved = rename_folder(self.source.mailbox, state.path, folder.path)
                self.report.moved_ids |= moved
                self.report.renamed += 1
                self.ctx.info(
                    f"{self.source.user_id}: folder {state.path} is now {folder.path} "
                    f"({len(moved)} messages)."
                )
                state.path = folder.path
                state.save(update_fields=["path"])
        for folder in folders:
            self.folder(folder, states.get(folder.id))
            self.ctx.check_cancelled()

    def folder(self, folder: MailFolder, state: SyncedFolder | None) -> None:
        changes = self.reader.changes(folder.id, state.delta_link if state else "")
        mailbox = self.source.mailbox
        refs = {_ref(self.source.user_id, r.id): r for r in changes.added}
        known = dict(
            Placement.objects.filter(mailbox=mailbox, source_ref__in=list(refs)).values_list(
                "source_ref", "message_id"
            )
        )
        messages = {m.pk: m for m in Message.objects.filter(pk__in=set(known.values()))}
        for key, message_id in known.items():
            if place(mailbox, messages[message_id], folder.path, key):
                self.report.placed += 1
                self.report.moved_ids.add(message_id)
        unknown = [r for key, r in refs.items() if key not in known]
        failures = len(self.report.failures)
        for start in range(0, len(unknown), FETCH_CHUNK):
            self.fetched(folder, unknown[start : start + FETCH_CHUNK])
        self.ingestor.flush()
        if state is None:
            state = SyncedFolder(sync=self.sync, user_id=self.source.user_id, folder_id=folder.id)
        state.path = folder.path
        if len(self.report.failures) == failures:
            # Otherwise the old link stays: the next run reads this round again and fetches
            # the messages that failed now.
            state.delta_link = changes.delta_link
        state.updated_at = timezone.now()
        state.save()

    def fetched(self, folder: MailFolder, refs: list[MessageRef]) -> None:
        mailbox = self.source.mailbox
        got: list[tuple[str, bytes]] = []
        for mid, raw, why in self.reader.mime_of(refs):
            if raw is None:
                self.failure(f"{self.source.user_id} {folder.path}: {why}")
            else:
                got.append((mid, raw))
        shas = {mid: hashlib.sha256(raw).hexdigest() for mid, raw in got}
        existing = {m.sha256: m for m in Message.objects.filter(sha256__in=set(shas.values()))}
        for mid, raw in got:
            key = _ref(self.source.user_id, mid)
            message = existing.get(shas[mid])
            if message is not None:  # journaled (or archived elsewhere): give it its folder
                if place(mailbox, message, folder.path, key):
                    self.report.placed += 1
                    self.report.moved_ids.add(message.pk)
                continue
            self.ingestor.add(
                IngestRequest(
                    raw=raw,
                    source=Message.Source.GRAPH,
                    targets=[Target(mailbox, folder.path)],
                    source_ref=key,
                )
            )
            self.report.archived += 1
        self.ctx.progress(self.report.placed + self.report.archived)


def _delete_in_mailbox(
    ctx: JobContext, sync: FolderSynchronization, client: GraphClient, sources: list[Source]
) -> None:
    """Delete verified, unflagged, unheld copies in the source mailboxes (each logged with
    its archive id). Every candidate is fetched again and compared with the stored copy."""
    from mailvault.sources.profiles.runs import RunReport, decide

    cutoff: datetime | None = None
    if sync.delete_in_mailbox == FS.Delete.OLDER and sync.delete_older_than_days:
        cutoff = timezone.now() - timedelta(days=sync.delete_older_than_days)
    for source in sources:
        reader = MailboxReader(client, source.user_id)
        report = RunReport()
        try:
            _deletion_candidates(ctx, reader, source, cutoff, report)
        except GraphError as exc:
            ctx.error(
                f"{source.user_id}: nothing deleted in this mailbox, reading it failed: {exc}"
            )
            continue
        decision = decide(ctx, report)
        if decision is None:
            continue
        # Only a copy filed in this user's archive mailbox counts (the same bytes archived
        # for another mailbox do not keep this user's message).
        filed = set(
            Placement.objects.filter(
                mailbox=source.mailbox, message_id__in={mid for _c, mid in decision.deletable}
            ).values_list("message_id", flat=True)
        )
        for candidate, archive_id in decision.deletable:
            if archive_id not in filed:
                ctx.warning(
                    f"{source.user_id}: message {candidate.source_id} kept: its archived copy "
                    "is not filed in this mailbox yet."
                )
                continue
            try:
                reader.delete(candidate.source_id)
            except GraphError as exc:
                ctx.error(f"Deleting in {source.user_id} failed (kept): {exc}")
                continue
            ctx.info(
                f"Deleted in the mailbox {source.user_id}: message {candidate.source_id} "
                f"(archive id {archive_id})."
            )


def _deletion_candidates(
    ctx: JobContext,
    reader: MailboxReader,
    source: Source,
    cutoff: datetime | None,
    report: RunReport,
) -> None:
    """Every message of the mailbox (old enough, if so configured), fetched again: its
    hash is what the deletion guard compares with the stored copy."""
    for folder in reader.folders(well_known=HIDDEN):
        if folder.well_known in HIDDEN:
            continue
        refs = reader.changes(folder.id).added
        if cutoff is not None:
            refs = [r for r in refs if r.received and _received(r.received) < cutoff]
        flagged = {r.id: r.flagged for r in refs}
        for mid, raw, why in reader.mime_of(refs):
            if raw is None:
                ctx.warning(f"{source.user_id} {folder.path}: kept, not readable: {why}")
                continue
            report.candidates.append(
                deletion.Candidate(
                    source.user_id, mid, hashlib.sha256(raw).hexdigest(), flagged[mid]
                )
            )


def _received(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return timezone.now()  # unknown age: never "old enough"


@process_type(
    PROCESS_TYPE,
    "Folder synchronization",
    config_model="sources.FolderSynchronization",
    timeout_seconds=12 * 3600,
)
def folder_sync(ctx: JobContext) -> None:
    sync = ctx.config
    assert isinstance(sync, FolderSynchronization)
    if sync.type == FS.Type.IMAP:
        from mailvault.sources.foldersync.imap import run_imap

        run_imap(ctx, sync)
        return
    if sync.synchronize_users and sync.directory_service is not None:
        from mailvault.directory.sync import synchronize

        ctx.info(f"Synchronizing the directory service {sync.directory_service.name} first.")
        synchronize(sync.directory_service, info=ctx.info, warn=ctx.warning)
    sources = _sources(sync)
    ctx.info(f"Synchronizing the folders of {len(sources)} mailbox(es).")
    report = SyncReport()
    try:
        client = _client(sync)
    except FolderSyncFailed as exc:
        ctx.error(str(exc))
        raise
    with client:
        try:
            client.tokens.token()
        except GraphError as exc:
            ctx.error(str(exc))
            raise FolderSyncFailed(str(exc)) from exc
        with Ingestor(batch_size=100, index_every=2000, index_interval_s=5.0) as ingestor:
            for source in sources:
                reader = MailboxReader(client, source.user_id)
                worker = _MailboxSync(ctx, sync, reader, source, ingestor, report)
                try:
                    worker.run()
                except GraphError as exc:
                    worker.failure(f"{source.user_id}: {exc}")
        if report.moved_ids:
            reindex_messages(sorted(report.moved_ids))
        ctx.info(
            f"{report.placed} messages filed into their folders, {report.archived} archived "
            f"that the archive lacked, {report.renamed} folders renamed, "
            f"{len(report.failures)} failed."
        )
        if report.failures:
            return  # finished with errors (logged): not a success, nothing deleted
        if sync.delete_in_mailbox != FS.Delete.NEVER:
            _delete_in_mailbox(ctx, sync, client, sources)
    FolderSynchronization.objects.filter(pk=sync.pk).update(last_success_at=timezone.now())
