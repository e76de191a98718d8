"""Incremental IMAP sync of one mailbox: which folders, what is new, fetched in batches.

Folders: special-use flags (RFC 6154) say which are junk and trash (skipped when
configured); on Gmail (``X-GM-EXT-1``) only the ``\\All`` folder is archived, since every
label folder holds copies of the same messages. Names are decoded from modified UTF-7 by
imapclient and mirrored with "/" as the separator.

What is new: the UIDs above the folder's last archived UID, under the folder's
UIDVALIDITY. When UIDVALIDITY changes the folder is read again from the start; the
pipeline deduplicates by content, so nothing is filed twice. With CONDSTORE/QRESYNC an
unchanged HIGHESTMODSEQ (and UIDNEXT) skips the folder without a SEARCH.

A dropped connection is retried with exponential backoff and the sync resumes after the
last UID the caller accepted.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from mailvault.sources.imap.client import ImapError, ImapSettings, connect

_CONNECTION_ERRORS = (IMAPClientAbortError, OSError, ssl.SSLError, socket.timeout, EOFError)
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS"]


class FolderGone(ImapError):
    """The folder no longer exists on the server."""


@dataclass(frozen=True)
class FolderInfo:
    name: str  # the server's (decoded) name
    path: str  # the mirrored archive path, "/"-separated, "Inbox" for INBOX
    flags: frozenset[str]


@dataclass
class FolderState:
    uidvalidity: int = 0
    last_uid: int = 0
    highest_modseq: int | None = None


@dataclass(frozen=True)
class Fetched:
    folder: FolderInfo
    uid: int
    uidvalidity: int
    raw: bytes = field(repr=False)
    flags: frozenset[str]

    @property
    def flagged(self) -> bool:
        return "\\flagged" in self.flags


def _flag_text(flag: Any) -> str:
    return (flag.decode() if isinstance(flag, bytes) else str(flag)).lower()


def mirror_path(name: str, delimiter: str | None) -> str:
    parts = name.split(delimiter) if delimiter else [name]
    parts = [p for p in parts if p]
    if parts and parts[0].upper() == "INBOX":
        parts[0] = "Inbox"
    return "/".join(parts)


def _matches(path: str, patterns: list[str]) -> bool:
    """``path`` is one of ``patterns`` or inside one (case-insensitive)."""
    low = path.casefold()
    for pattern in patterns:
        p = pattern.strip("/").casefold()
        if low == p or low.startswith(p + "/"):
            return True
    return False


def _chunks(uids: list[int], size: int, singles: set[int]) -> Iterator[list[int]]:
    """Runs of up to ``size`` UIDs; a UID in ``singles`` is fetched on its own."""
    chunk: list[int] = []
    for uid in uids:
        if uid in singles:
            if chunk:
                yield chunk
                chunk = []
            yield [uid]
            continue
        chunk.append(uid)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ImapSession:
    """One source mailbox, signed in on demand and reconnected after a drop."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._on_retry = on_retry
        self._client: IMAPClient | None = None
        self._fetching: list[int] = []
        self.reconnects = 0

    # --- connection ------------------------------------------------------------------

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            self._client = connect(self.settings)
            for extension in ("QRESYNC", "CONDSTORE"):
                if self._client.has_capability(extension):
                    try:
                        self._client.enable(extension)
                    except IMAPClientError:
                        continue
                    break
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.logout()
            except (IMAPClientError, *_CONNECTION_ERRORS):
                pass
            self._client = None

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dropped(self, attempt: int, exc: BaseException) -> None:
        """Forget the broken connection; wait, or give up after ``retries`` attempts."""
        self._client = None
        if attempt >= self.retries:
            raise ImapError(
                f"The connection to {self.settings.host} dropped {attempt + 1} times; "
                f"giving up: {exc}"
            ) from exc
        delay = self.backoff_s * (2**attempt)
        if self._on_retry:
            self._on_retry(
                f"The connection to {self.settings.host} dropped ({exc}); "
                f"reconnecting in {delay:g} s."
            )
        self._sleep(delay)
        self.reconnects += 1

    def _with_retry(self, action: Callable[[IMAPClient], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return action(self.client)
            except _CONNECTION_ERRORS as exc:
                self._dropped(attempt, exc)
                attempt += 1

    @property
    def is_gmail(self) -> bool:
        return bool(self._with_retry(lambda c: c.has_capability("X-GM-EXT-1")))

    # --- folders ---------------------------------------------------------------------

    def folders(
        self, *, include: list[str], exclude: list[str], skip_junk_trash: bool
    ) -> list[FolderInfo]:
        """The folders to archive, in server order."""
        listing = self._with_retry(lambda c: c.list_folders())
        gmail = self.is_gmail
        chosen: list[FolderInfo] = []
        for flags, delimiter, name in listing:
            flag_set = frozenset(_flag_text(f) for f in flags)
            if flag_set & {"\\noselect", "\\nonexistent"}:
                continue
            delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
            info = FolderInfo(name=str(name), path=mirror_path(str(name), delim), flags=flag_set)
            junk_or_trash = bool(flag_set & {"\\junk", "\\trash"})
            if skip_junk_trash and junk_or_trash:
                continue
            if gmail and "\\all" not in flag_set and not junk_or_trash:
                continue  # label folders: copies of what \All holds
            if include and not _matches(info.path, include):
                continue
            if exclude and _matches(info.path, exclude):
                continue
            chosen.append(info)
        return chosen

    # --- one folder ------------------------------------------------------------------

    def _select(self, folder: FolderInfo) -> dict[bytes, Any]:
        try:
            return dict(self.client.select_folder(folder.name, readonly=True))
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if not self.client.folder_exists(folder.name):
                raise FolderGone(f"The folder {folder.path} no longer exists.") from exc
            raise ImapError(f"Cannot open the folder {folder.path}: {exc}") from exc

    def new_messages(
        self,
        folder: FolderInfo,
        state: FolderState,
        *,
        newer_than: date | None = None,
        older_than: date | None = None,
        batch_size: int = 100,
        on_problem: Callable[[str], None] = lambda text: None,
        on_notice: Callable[[str], None] = lambda text: None,
    ) -> Iterator[list[Fetched]]:
        """Batches of new messages. ``state`` advances after the caller took a batch, so
        a reconnect (or the next run) resumes after what was accepted.

        A FETCH that breaks the connection is retried one message at a time; a single
        message that breaks it again is reported and skipped (some servers disconnect on
        a message they cannot read)."""
        attempt = 0
        suspects: set[int] = set()
        bad: set[int] = set()
        while True:
            self._fetching = []
            try:
                for batch in self._new_messages(
                    folder,
                    state,
                    newer_than,
                    older_than,
                    batch_size,
                    on_problem,
                    on_notice,
                    suspects,
                    bad,
                ):
                    attempt = 0  # progress: the next drop gets the full retries again
                    yield batch
                return
            except _CONNECTION_ERRORS as exc:
                broken = self._fetching
                if len(broken) == 1 and broken[0] in suspects:
                    bad.add(broken[0])
                    on_problem(
                        f"{folder.path}: UID {broken[0]} could not be fetched: the server "
                        f"closed the connection ({exc})."
                    )
                else:
                    suspects.update(broken)
                self._dropped(attempt, exc)
                attempt += 1

    def _new_messages(
        self,
        folder: FolderInfo,
        state: FolderState,
        newer_than: date | None,
        older_than: date | None,
        batch_size: int,
        on_problem: Callable[[str], None],
        on_notice: Callable[[str], None],
        suspects: set[int],
        bad: set[int],
    ) -> Iterator[list[Fetched]]:
        info = self._select(folder)
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        modseq = info.get(b"HIGHESTMODSEQ")
        uidnext = info.get(b"UIDNEXT")
        if state.uidvalidity and uidvalidity != state.uidvalidity:
            on_notice(
                f"{folder.path}: UIDVALIDITY changed ({state.uidvalidity} → {uidvalidity}); "
                "reading the folder again (already archived messages are not filed twice)."
            )
            state.last_uid, state.highest_modseq = 0, None
        state.uidvalidity = uidvalidity
        unchanged = modseq is not None and state.highest_modseq == int(modseq)
        if (unchanged or (uidnext is not None and int(uidnext) <= state.last_uid + 1)) and (
            state.last_uid
        ):
            return
        criteria: list[Any] = ["UID", f"{state.last_uid + 1}:*"]
        if newer_than:
            criteria += ["SINCE", newer_than]
        if older_than:
            criteria += ["BEFORE", older_than]
        uids = sorted(int(u) for u in self.client.search(criteria) if int(u) > state.last_uid)
        for chunk in _chunks([u for u in uids if u not in bad], batch_size, suspects):
            self._fetching = chunk
            batch = self._fetch(folder, chunk, uidvalidity, on_problem)
            self._fetching = []
            yield batch
            state.last_uid = max(state.last_uid, chunk[-1])
        if modseq is not None:
            state.highest_modseq = int(modseq)

    def _fetch(
        self,
        folder: FolderInfo,
        uids: list[int],
        uidvalidity: int,
        on_problem: Callable[[str], None],
    ) -> list[Fetched]:
        try:
            response = self.client.fetch(uids, FETCH_ITEMS)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if not self.client.folder_exists(folder.name):
                raise FolderGone(f"The folder {folder.path} vanished during the run.") from exc
            if len(uids) == 1:
                on_problem(f"{folder.path}: UID {uids[0]} could not be fetched: {exc}")
                return []
            # One bad message fails the whole command on some servers: one at a time.
            fetched: list[Fetched] = []
            for uid in uids:
                fetched += self._fetch(folder, [uid], uidvalidity, on_problem)
            return fetched
        fetched = []
        for uid in uids:
            data = response.get(uid) or {}
            raw = data.get(b"BODY[]")
            if raw is None:
                on_problem(f"{folder.path}: UID {uid} could not be fetched (no body returned).")
                continue
            flags = frozenset(_flag_text(f) for f in data.get(b"FLAGS", ()))
            fetched.append(Fetched(folder, uid, uidvalidity, bytes(raw), flags))
        return fetched

    def archived_earlier(
        self,
        folder: FolderInfo,
        up_to_uid: int,
        skip: set[int],
        *,
        newer_than: date | None = None,
        older_than: date | None = None,
        batch_size: int = 100,
        on_problem: Callable[[str], None] = lambda text: None,
    ) -> Iterator[list[Fetched]]:
        """The messages up to ``up_to_uid`` (archived by earlier runs) still in the folder,
        fetched again so their bytes can be checked against the archive before deleting."""
        if up_to_uid <= 0:
            return
        uidvalidity = int(self._select(folder).get(b"UIDVALIDITY", 0))
        criteria: list[Any] = ["UID", f"1:{up_to_uid}"]
        if newer_than:
            criteria += ["SINCE", newer_than]
        if older_than:
            criteria += ["BEFORE", older_than]
        uids = sorted(
            int(u)
            for u in self.client.search(criteria)
            if int(u) <= up_to_uid and int(u) not in skip
        )
        for start in range(0, len(uids), batch_size):
            yield self._fetch(folder, uids[start : start + batch_size], uidvalidity, on_problem)

    # --- deleting --------------------------------------------------------------------

    def delete(self, folder: FolderInfo, uids: list[int]) -> None:
        """Mark ``uids`` deleted and expunge exactly them (UID EXPUNGE with UIDPLUS)."""
        if not uids:
            return

        def action(client: IMAPClient) -> None:
            if not client.has_capability("UIDPLUS"):
                # A plain EXPUNGE would also remove what the user marked deleted.
                raise ImapError(f"{self.settings.host} lacks UIDPLUS: nothing is deleted.")
            client.select_folder(folder.name, readonly=False)
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            client.expunge(uids)
            client.unselect_folder()

        self._with_retry(action)
