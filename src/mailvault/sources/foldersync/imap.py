"""IMAP folder synchronization: mirror one IMAP mailbox's folders into its archive mailbox.

Identity. IMAP has no immutable message ids: a message is (folder, UIDVALIDITY, UID), the
placement's source reference ``imap:<address>:<path>:<uidvalidity>:<uid>`` (the same
form an IMAP archiving profile uses). ``ImapSyncedMessage`` remembers, per folder, which
UIDs were filed and the SHA-256 of their bytes.

A run:

1. Lists the folders (``\\Junk``/``\\Trash`` skipped when configured; on Gmail only
   ``\\All``, as in ``sources/imap/sync.py``) and SELECTs each. A folder whose
   UIDVALIDITY, UIDNEXT, message count (and HIGHESTMODSEQ with CONDSTORE) are unchanged
   and whose messages are all filed is skipped without listing its UIDs.
2. Renames: a folder known from earlier runs that is no longer listed, and a listed
   folder not known yet, are one folder renamed when they have the same UIDVALIDITY and
   the new folder holds the old one's UIDs with the same content (up to
   ``RENAME_SAMPLE`` of them fetched and compared by SHA-256; an empty old folder matches
   by UIDVALIDITY alone when exactly one new folder has it). The archive folder (with
   its subfolders) is renamed by ``filing.rename_folder``. A server that gives a renamed
   folder a new UIDVALIDITY still ends right: its messages are followed as moves.
3. Messages that left a folder (their UID is gone, or the folder's UIDVALIDITY changed)
   are pooled by content hash. Each new UID is fetched; its hash decides:
   pooled → the message moved (or the folder was re-read): its placement is moved by
   ``filing.place``; in the archive already (journaled, archived by a profile, a copy in
   another folder) → only filed into this folder; otherwise ingested into it. Nothing is
   stored twice. A UIDVALIDITY change during the run re-reads the folder.
4. What is left in the pool was deleted in the mailbox: the archive keeps it.

Deleting in the mailbox happens only after a run without errors: every candidate is
fetched again, its hash must equal the one filed, and the profiles' guarded decision
(``profiles/job._decide``: stored bytes re-hashed, never ``\\Flagged``, never under a
legal hold, fail closed) picks what goes; a UID EXPUNGE refuses to act when UIDVALIDITY
changed, and each deletion is logged with the archive id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import NoReturn

from django.db import transaction
from django.utils import timezone

from mailvault.archive.filing import place, rename_folder
from mailvault.archive.models import Message, Placement
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.reconcile import reindex_messages
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.context import JobContext, JobFailed
from mailvault.sources.imap import (
    Fetched,
    FolderInfo,
    FolderSnapshot,
    ImapError,
    ImapLoginError,
    ImapSession,
    UidValidityChanged,
)
from mailvault.sources.imap.server import MissingSecret, OAuthError, oauth_token, server_settings
from mailvault.sources.models_foldersync import (
    FolderSynchronization,
    ImapSyncedFolder,
    ImapSyncedMessage,
)
from mailvault.sources.profiles import deletion

FS = FolderSynchronization
BATCH_SIZE = 200  # UIDs per FETCH
RETRY_BACKOFF_S = 1.0  # before reconnecting after a drop; doubles per attempt
REREADS = 3  # how often a folder whose UIDVALIDITY changes mid-run is read again
RENAME_SAMPLE = 5
MAX_PROBLEM_MESSAGES = 200


class ImapFolderSyncFailed(JobFailed):
    """The run failed; the reason is in the process log already."""


@dataclass
class _Left:
    """A filed message whose UID left its folder in this run (pooled by content)."""

    state: ImapSyncedFolder
    row_id: int
    left_folder: bool  # False: the folder still holds the same content under another UID


@dataclass
class Report:
    archived: int = 0
    placed: int = 0
    moved: int = 0
    renamed: int = 0
    unchanged: int = 0
    failures: list[str] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)  # messages whose folders changed


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class ImapFolderSync:
    def __init__(
        self, ctx: JobContext, sync: FolderSynchronization, session: ImapSession, ingestor: Ingestor
    ) -> None:
        assert sync.mailbox is not None
        self.ctx, self.sync, self.session, self.ingestor = ctx, sync, session, ingestor
        self.mailbox = sync.mailbox
        self.report = Report()
        self.pool: dict[str, list[_Left]] = {}
        self.pooled: set[int] = set()
        self.states: dict[str, ImapSyncedFolder] = {}
        self.folders: list[FolderInfo] = []

    def failure(self, text: str) -> None:
        self.report.failures.append(text)
        if len(self.report.failures) <= MAX_PROBLEM_MESSAGES:
            self.ctx.error(text)

    def ref(self, path: str, uidvalidity: int, uid: int) -> str:
        return f"imap:{self.sync.address}:{path}:{uidvalidity}:{uid}"

    # --- the run ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            listed = self.session.folders(
                include=[], exclude=[], skip_junk_trash=self.sync.skip_junk_trash
            )
        except ImapError as exc:  # wrong credentials, unreachable server, TLS
            self.ctx.error(str(exc))
            raise ImapFolderSyncFailed(str(exc)) from exc
        self.ctx.info(f"{len(listed)} folders: {', '.join(f.path for f in listed)}.")
        self.states = {s.path: s for s in ImapSyncedFolder.objects.filter(sync=self.sync)}
        snaps: dict[str, FolderSnapshot] = {}
        for folder in listed:
            try:
                snaps[folder.path] = self.session.snapshot(folder, self._unchanged(folder))
            except ImapLoginError as exc:
                self.ctx.error(str(exc))
                raise ImapFolderSyncFailed(str(exc)) from exc
            except ImapError as exc:  # FolderGone included: it vanished during the run
                self.failure(f"{folder.path}: {exc}")
        self.folders = [f for f in listed if f.path in snaps]
        try:
            self._renames(snaps)
        except ImapLoginError as exc:
            self.ctx.error(str(exc))
            raise ImapFolderSyncFailed(str(exc)) from exc
        except ImapError as exc:
            self.failure(f"Checking for renamed folders failed: {exc}")
        paths = {f.path for f in listed}
        gone = [s for path, s in self.states.items() if path not in paths]
        for state in gone:
            self.ctx.warning(
                f"The folder {state.path} is no longer in the mailbox (or is skipped); the "
                "archive keeps it and its messages."
            )
            self._pool(state, None)
        for folder in self.folders:
            self._pool(self.states.get(folder.path), snaps[folder.path])
        for folder in self.folders:
            try:
                self._folder(folder, snaps[folder.path])
            except ImapLoginError as exc:
                self.ctx.error(str(exc))
                raise ImapFolderSyncFailed(str(exc)) from exc
            except ImapError as exc:
                self.failure(f"{folder.path}: {exc}")
            self.ctx.check_cancelled()
        if not self.report.failures:
            # Still pooled: deleted in the mailbox. The archive keeps the messages.
            ImapSyncedMessage.objects.filter(pk__in=self.pooled).delete()
            ImapSyncedFolder.objects.filter(pk__in=[s.pk for s in gone]).delete()

    def _unchanged(self, folder: FolderInfo) -> Callable[[FolderSnapshot], bool] | None:
        state = self.states.get(folder.path)
        if state is None:
            return None
        filed = ImapSyncedMessage.objects.filter(
            folder=state, uidvalidity=state.uidvalidity
        ).count()

        def unchanged(snap: FolderSnapshot) -> bool:
            return (
                snap.uidvalidity == state.uidvalidity
                and snap.uidnext is not None
                and snap.uidnext == state.uidnext
                and snap.exists == state.exists == filed
                and (snap.highest_modseq is None or snap.highest_modseq == state.highest_modseq)
            )

        return unchanged

    # --- renames ---------------------------------------------------------------------

    def _renames(self, snaps: dict[str, FolderSnapshot]) -> None:
        listed = {f.path: f for f in self.folders}
        for old in sorted(list(self.states.values()), key=lambda s: len(s.path)):
            if old.path in listed or self.states.get(old.path) is not old:
                continue
            known = dict(
                ImapSyncedMessage.objects.filter(
                    folder=old, uidvalidity=old.uidvalidity
                ).values_list("uid", "sha256")
            )
            fresh = [
                f
                for f in self.folders
                if f.path not in self.states and snaps[f.path].uidvalidity == old.uidvalidity
            ]
            target = None
            if not known:
                target = fresh[0] if len(fresh) == 1 else None
            for folder in fresh if known else []:
                if self._same_content(folder, snaps[folder.path], known):
                    target = folder
                    break
            if target is not None:
                self._rename(old, target, listed)

    def _same_content(
        self, folder: FolderInfo, snap: FolderSnapshot, known: dict[int, str]
    ) -> bool:
        shared = sorted((snap.uids or frozenset()) & known.keys())[:RENAME_SAMPLE]
        if not shared:
            return False
        fetched = self.session.fetch_uids(folder, shared, snap.uidvalidity)
        return len(fetched) == len(shared) and all(_sha(m.raw) == known[m.uid] for m in fetched)

    def _rename(
        self, old: ImapSyncedFolder, new: FolderInfo, listed: dict[str, FolderInfo]
    ) -> None:
        old_path = old.path
        moved = rename_folder(self.mailbox, old_path, new.path)
        self.report.touched |= moved
        self.report.renamed += 1
        self.ctx.info(
            f"The folder {old_path} was renamed to {new.path} (same UIDVALIDITY and "
            f"messages): renamed in the archive ({len(moved)} messages)."
        )
        for state in list(self.states.values()):  # the folder and its subfolders
            if state.path != old_path and not state.path.startswith(old_path + "/"):
                continue
            path = new.path + state.path[len(old_path) :]
            if path in self.states:
                continue  # a folder of that name is synchronized already: keep both
            del self.states[state.path]
            state.path = path
            state.name = listed[path].name if path in listed else state.name
            state.save(update_fields=["path", "name"])
            self.states[path] = state

    # --- messages that left their folder ---------------------------------------------

    def _pool(self, state: ImapSyncedFolder | None, snap: FolderSnapshot | None) -> None:
        """Pool the filed messages no longer at their UID in ``state``'s folder (all of
        them when the folder is gone, ``snap`` None, or its UIDVALIDITY changed)."""
        if state is None or (snap is not None and snap.uids is None):
            return
        if snap is not None and state.uidvalidity and snap.uidvalidity != state.uidvalidity:
            self.ctx.warning(
                f"{state.path}: UIDVALIDITY changed ({state.uidvalidity} → "
                f"{snap.uidvalidity}); reading the folder again (matched by content, "
                "nothing is filed twice)."
            )
        rows = list(ImapSyncedMessage.objects.filter(folder=state))
        current = snap.uids if snap is not None and snap.uids is not None else frozenset()
        valid = snap.uidvalidity if snap is not None else None
        left = [r for r in rows if r.uidvalidity != valid or r.uid not in current]
        staying = {r.sha256 for r in rows if r.uidvalidity == valid and r.uid in current}
        for row in left:
            if row.pk in self.pooled:
                continue
            self.pooled.add(row.pk)
            self.pool.setdefault(row.sha256, []).append(
                _Left(state, row.pk, row.sha256 not in staying)
            )

    def _take(self, sha: str, path: str) -> _Left | None:
        """A pooled message with this content, this folder's own first (re-read)."""
        entries = self.pool.get(sha)
        if not entries:
            return None
        entries.sort(key=lambda e: (e.state.path != path, not e.left_folder))
        entry = entries.pop(0)
        self.pooled.discard(entry.row_id)
        return entry

    # --- one folder ------------------------------------------------------------------

    def _folder(self, folder: FolderInfo, snap: FolderSnapshot) -> None:
        state = self.states.get(folder.path)
        if state is None:
            state = ImapSyncedFolder.objects.create(
                sync=self.sync, name=folder.name, path=folder.path, uidvalidity=snap.uidvalidity
            )
            self.states[folder.path] = state
        if snap.uids is None:
            self.report.unchanged += 1
            return
        for attempt in range(REREADS + 1):
            try:
                self._read(folder, state, snap)
                return
            except UidValidityChanged as exc:
                if attempt >= REREADS:
                    raise
                self.ctx.warning(f"{exc} Reading the folder again.")
                snap = self.session.snapshot(folder)
                self._pool(state, snap)

    def _read(self, folder: FolderInfo, state: ImapSyncedFolder, snap: FolderSnapshot) -> None:
        assert snap.uids is not None
        known = set(
            ImapSyncedMessage.objects.filter(
                folder=state, uidvalidity=snap.uidvalidity, uid__in=snap.uids
            ).values_list("uid", flat=True)
        )
        state.uidvalidity = snap.uidvalidity
        state.name = folder.name
        state.save(update_fields=["uidvalidity", "name"])
        new = sorted(snap.uids - known)
        for start in range(0, len(new), BATCH_SIZE):
            batch = self.session.fetch_uids(
                folder, new[start : start + BATCH_SIZE], snap.uidvalidity, on_problem=self.failure
            )
            self._file(folder, state, batch)
            self.ctx.progress(self.report.archived + self.report.placed + self.report.moved)
            self.ctx.check_cancelled()
        state.uidnext, state.exists = snap.uidnext, snap.exists
        state.highest_modseq, state.updated_at = snap.highest_modseq, timezone.now()
        state.save()

    def _file(self, folder: FolderInfo, state: ImapSyncedFolder, batch: list[Fetched]) -> None:
        shas = {m.uid: _sha(m.raw) for m in batch}
        existing = {m.sha256: m for m in Message.objects.filter(sha256__in=set(shas.values()))}
        consumed: list[int] = []
        for m in batch:
            sha, ref = shas[m.uid], self.ref(folder.path, m.uidvalidity, m.uid)
            entry = self._take(sha, folder.path)
            if entry is not None:
                consumed.append(entry.row_id)
            message = existing.get(sha)
            if message is None:
                self.ingestor.add(
                    IngestRequest(
                        raw=m.raw,
                        source=Message.Source.IMAP,
                        targets=[Target(self.mailbox, folder.path)],
                        source_ref=ref,
                    )
                )
                self.report.archived += 1
            elif entry is not None and entry.left_folder and entry.state.path != folder.path:
                self._move(message, entry.state.path, folder.path, ref)
            elif place(self.mailbox, message, folder.path, ref):
                self.report.placed += 1
                self.report.touched.add(message.pk)
        self.ingestor.flush()
        with transaction.atomic():
            ImapSyncedMessage.objects.filter(pk__in=consumed).delete()
            ImapSyncedMessage.objects.bulk_create(
                [
                    ImapSyncedMessage(
                        folder=state, uidvalidity=m.uidvalidity, uid=m.uid, sha256=shas[m.uid]
                    )
                    for m in batch
                ],
                ignore_conflicts=True,
            )

    def _move(self, message: Message, old_path: str, path: str, ref: str) -> None:
        """The message left ``old_path`` for ``path``: its placement there follows it
        (``place`` moves the placement carrying the same source reference)."""
        old = Placement.objects.filter(
            mailbox=self.mailbox, folder__path=old_path, message=message
        ).first()
        if old is not None:
            old.source_ref = ref[:512]
            old.save(update_fields=["source_ref"])
        place(self.mailbox, message, path, ref)
        self.report.moved += 1
        self.report.touched.add(message.pk)

    # --- deleting in the mailbox -----------------------------------------------------

    def delete_in_mailbox(self) -> None:
        """Delete verified, unflagged, unheld copies (each logged with its archive id)."""
        from mailvault.sources.profiles.runs import RunReport, decide

        before: date | None = None
        if self.sync.delete_in_mailbox == FS.Delete.OLDER and self.sync.delete_older_than_days:
            before = timezone.localdate() - timedelta(days=self.sync.delete_older_than_days)
        report = RunReport()
        validity: dict[str, tuple[FolderInfo, int]] = {}
        changed = 0
        for folder in self.folders:
            state = self.states.get(folder.path)
            if state is None:
                continue
            filed = dict(
                ImapSyncedMessage.objects.filter(
                    folder=state, uidvalidity=state.uidvalidity
                ).values_list("uid", "sha256")
            )
            try:
                snap = self.session.snapshot(folder)
                if snap.uidvalidity != state.uidvalidity:
                    raise UidValidityChanged(f"{folder.path}: UIDVALIDITY changed.")
                validity[folder.name] = (folder, snap.uidvalidity)
                uids = sorted((snap.uids or frozenset()) & filed.keys())
                for start in range(0, len(uids), BATCH_SIZE):
                    for m in self.session.fetch_uids(
                        folder,
                        uids[start : start + BATCH_SIZE],
                        snap.uidvalidity,
                        before=before,
                        on_problem=self.ctx.warning,
                    ):
                        sha = _sha(m.raw)
                        if sha != filed[m.uid]:
                            changed += 1  # not the message filed under this UID
                            continue
                        report.candidates.append(
                            deletion.Candidate(folder.name, str(m.uid), sha, m.flagged)
                        )
            except ImapError as exc:
                self.ctx.warning(f"{folder.path}: nothing there is deleted this time: {exc}")
                report.candidates = [c for c in report.candidates if c.folder_key != folder.name]
                validity.pop(folder.name, None)
        if changed:
            self.ctx.warning(f"{changed} messages differ from the filed copy: kept.")
        decision = decide(self.ctx, report)
        if decision is None:
            return
        # Only a copy filed in this archive mailbox counts (the same bytes archived for
        # another mailbox do not keep this one's message).
        in_mailbox = set(
            Placement.objects.filter(
                mailbox=self.mailbox, message_id__in={mid for _c, mid in decision.deletable}
            ).values_list("message_id", flat=True)
        )
        per_folder: dict[str, dict[int, int]] = {}
        for candidate, message_id in decision.deletable:
            if message_id not in in_mailbox:
                self.ctx.warning(
                    f"UID {candidate.source_id} in {candidate.folder_key} kept: its archived "
                    "copy is not filed in this mailbox."
                )
                continue
            per_folder.setdefault(candidate.folder_key, {})[int(candidate.source_id)] = message_id
        for name, ids in per_folder.items():
            folder, uidvalidity = validity[name]
            try:
                deleted = self.session.delete(
                    folder, sorted(ids), uidvalidity=uidvalidity, keep_flagged=True
                )
            except UidValidityChanged as exc:
                self.ctx.warning(str(exc))
                continue
            except ImapError as exc:
                self.ctx.error(
                    f"Deleting in {folder.path} failed (UIDs {', '.join(map(str, sorted(ids)))} "
                    f"were verified and may be partly deleted): {exc}"
                )
                continue
            for uid in deleted:
                self.ctx.info(
                    f"Deleted in the mailbox {self.sync.address}: {folder.path} UID {uid} "
                    f"(archive id {ids[uid]})."
                )
            ImapSyncedMessage.objects.filter(
                folder=self.states[folder.path], uidvalidity=uidvalidity, uid__in=deleted
            ).delete()


def run_imap(ctx: JobContext, sync: FolderSynchronization) -> None:
    """The ``sources.folder_sync`` job for an IMAP mailbox. Raises ImapFolderSyncFailed
    (logged) when it cannot sign in or read the folder list; returns after logging errors
    when some folders failed (nothing is deleted then)."""
    mailbox = sync.mailbox
    if sync.mode != FS.Mode.SINGLE or mailbox is None:
        _fail(ctx, f"{sync.name}: IMAP synchronizes a single mailbox; set its address.")
    try:
        settings = server_settings(sync, address=sync.address, oauth=oauth_token(sync))
    except (MissingSecret, OAuthError) as exc:
        _fail(ctx, f"{sync.name}: {exc}.")
    if not settings.host:
        _fail(ctx, f"{sync.name}: the IMAP server is not set.")
    ctx.info(
        f"Synchronizing the folders of {sync.address} ({settings.host}:{settings.port}) into "
        f"the archive mailbox {mailbox.primary_address}."
    )
    with ImapSession(settings, on_retry=ctx.warning, backoff_s=RETRY_BACKOFF_S) as session:
        with Ingestor(batch_size=BATCH_SIZE, index_every=2000, index_interval_s=5.0) as ingestor:
            worker = ImapFolderSync(ctx, sync, session, ingestor)
            worker.run()
        report = worker.report
        if report.touched:
            reindex_messages(sorted(report.touched))
        hidden = len(report.failures) - MAX_PROBLEM_MESSAGES
        if hidden > 0:
            ctx.error(f"… and {hidden} more problems.")
        ctx.info(
            f"{report.archived} messages archived that the archive lacked, {report.placed} "
            f"filed into their folders, {report.moved} moved, {report.renamed} folders "
            f"renamed, {report.unchanged} folders unchanged, {len(report.failures)} failed."
        )
        if report.failures:
            ctx.warning("Nothing is deleted in the mailbox: the run had errors.")
            return
        if sync.delete_in_mailbox != FS.Delete.NEVER:
            worker.delete_in_mailbox()
    FolderSynchronization.objects.filter(pk=sync.pk).update(last_success_at=timezone.now())


def _fail(ctx: JobContext, text: str) -> NoReturn:
    ctx.error(text)
    raise ImapFolderSyncFailed(text)
