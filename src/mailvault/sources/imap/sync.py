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
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from mailvault.sources.imap.client import ImapError, ImapSettings, connect
from mailvault.sources.imap.wire import SIZE, UID, fetch_bodies, ranges

_CONNECTION_ERRORS = (IMAPClientAbortError, OSError, ssl.SSLError, socket.timeout, EOFError)
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS"]
# One FETCH asks for at most this many bytes of messages (RFC822.SIZE), so a batch of big
# messages stays small in memory; a bigger message is fetched on its own.
FETCH_MAX_BYTES = 16 << 20
# RFC822.SIZE is asked for this many UIDs at a time (one short round trip each).
SIZE_WINDOW = 5000
# SEARCH asks for the UIDs of a range this wide at a time (see ImapSession._search).
SEARCH_WINDOW = 50_000
# A message bigger than this is fetched in pieces of this size (BODY.PEEK[]<offset.size>):
# imaplib and imapclient would hold about three copies of it at once.
PIECE_BYTES = 8 << 20


class FolderGone(ImapError):
    """The folder no longer exists on the server."""


class UidValidityChanged(ImapError):
    """The folder's UIDVALIDITY is not the one the caller's UIDs belong to."""


@dataclass(frozen=True)
class FolderSnapshot:
    """What SELECT says about a folder, and its UIDs (None: not listed, unchanged)."""

    uidvalidity: int
    uidnext: int | None
    exists: int
    highest_modseq: int | None
    uids: frozenset[int] | None = None


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


class FetchedBatch(list[Fetched]):
    """One FETCH's messages, and where the folder's sync stands once they are archived:
    ``up_to``, the folder's last UID after this batch (below a UID that failed)."""

    def __init__(self, items: list[Fetched], *, uidvalidity: int, up_to: int) -> None:
        super().__init__(items)
        self.uidvalidity = uidvalidity
        self.up_to = up_to


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


def _chunks(
    uids: list[int],
    size: int,
    singles: set[int],
    sizes: dict[int, int] | None = None,
    max_bytes: int = 0,
) -> Iterator[list[int]]:
    """Runs of up to ``size`` UIDs (and ``max_bytes`` by ``sizes``, when given); a UID in
    ``singles`` is fetched on its own, and so is a message bigger than ``max_bytes``."""
    chunk: list[int] = []
    used = 0
    for uid in uids:
        if uid in singles:
            if chunk:
                yield chunk
                chunk, used = [], 0
            yield [uid]
            continue
        nbytes = sizes.get(uid, 0) if sizes else 0
        if chunk and max_bytes and used + nbytes > max_bytes:
            yield chunk
            chunk, used = [], 0
        chunk.append(uid)
        used += nbytes
        if len(chunk) >= size:
            yield chunk
            chunk, used = [], 0
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
        max_bytes: int = FETCH_MAX_BYTES,
        on_problem: Callable[[str], None] = lambda text: None,
        on_notice: Callable[[str], None] = lambda text: None,
    ) -> Iterator[FetchedBatch]:
        """Batches of new messages, each of at most ``batch_size`` messages and (but for a
        single bigger message) ``max_bytes``. ``state`` advances after the caller took a
        batch, so a reconnect (or the next run) resumes after what was accepted.

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
                    (batch_size, max_bytes),
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
        limits: tuple[int, int],
        on_problem: Callable[[str], None],
        on_notice: Callable[[str], None],
        suspects: set[int],
        bad: set[int],
    ) -> Iterator[FetchedBatch]:
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
        batch_size, max_bytes = limits
        failed: list[int] = []
        for window in self._search(state.last_uid, uidnext, newer_than, older_than):
            # A UID that could not be fetched (reported) stays above last_uid, so that the
            # next run tries it again: it is not archived, and must not be passed over.
            failed += [u for u in window if u in bad]
            window = [u for u in window if u not in bad]
            sizes = self._sizes(window) if max_bytes and window else None
            for chunk in _chunks(window, batch_size, suspects, sizes, max_bytes):
                self._fetching = chunk
                if len(chunk) == 1 and sizes and sizes.get(chunk[0], 0) > PIECE_BYTES:
                    batch = self._fetch_pieces(folder, chunk[0], uidvalidity, on_problem)
                else:
                    batch = self._fetch(folder, chunk, uidvalidity, on_problem)
                self._fetching = []
                got = {m.uid for m in batch}
                failed += [u for u in chunk if u not in got]
                accepted = chunk[-1] if not failed else min(chunk[-1], min(failed) - 1)
                accepted = max(state.last_uid, accepted)
                yield FetchedBatch(batch, uidvalidity=uidvalidity, up_to=accepted)
                state.last_uid = accepted
        if failed:
            state.highest_modseq = None
        elif modseq is not None:
            state.highest_modseq = int(modseq)

    def _search(
        self,
        last_uid: int,
        uidnext: Any,
        newer_than: date | None,
        older_than: date | None,
    ) -> Iterator[list[int]]:
        """The UIDs above ``last_uid`` (and in the date range), sorted, a window of at
        most SEARCH_WINDOW UIDs at a time up to UIDNEXT: an answer for a whole big
        folder would exceed imaplib's line limit (1 MB, about 150,000 UIDs) and would
        be held in memory at once."""
        low = last_uid + 1
        while True:
            high = low + SEARCH_WINDOW - 1
            final = uidnext is None or high >= int(uidnext) - 1
            criteria: list[Any] = ["UID", f"{low}:*" if final else f"{low}:{high}"]
            if newer_than:
                criteria += ["SINCE", newer_than]
            if older_than:
                criteria += ["BEFORE", older_than]
            found = sorted(int(u) for u in self.client.search(criteria) if int(u) >= low)
            # (``low:*`` names the last message even when its UID is below ``low``.)
            for start in range(0, len(found), SIZE_WINDOW):
                yield found[start : start + SIZE_WINDOW]
            if final:
                return
            low = high + 1

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of ``uids`` (a UID the server does not answer for is left out;
        a refused command gives no sizes: the batches are then bounded by count only)."""
        # imaplib directly: imapclient's general response parser costs more than the
        # FETCH of the messages themselves for this one number per message.
        try:
            status, lines = self.client._imap.uid("FETCH", ranges(uids), "(RFC822.SIZE)")
        except IMAPClientAbortError:
            raise
        except IMAPClientError:
            return {}
        sizes: dict[int, int] = {}
        if status != "OK":
            return sizes
        for line in lines:
            uid = UID.search(line) if isinstance(line, bytes) else None
            size = SIZE.search(line) if isinstance(line, bytes) else None
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _fetch(
        self,
        folder: FolderInfo,
        uids: list[int],
        uidvalidity: int,
        on_problem: Callable[[str], None],
    ) -> list[Fetched]:
        try:
            response = fetch_bodies(self.client, uids)
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

    def _fetch_pieces(
        self,
        folder: FolderInfo,
        uid: int,
        uidvalidity: int,
        on_problem: Callable[[str], None],
    ) -> list[Fetched]:
        """One big message, fetched in pieces. The pieces wait in a temporary file, not
        in a list to be joined: the join held the message twice (a 141 MB message took
        the job to 540 MB); the file is read back in one allocation."""
        flags: frozenset[str] = frozenset()
        with tempfile.TemporaryFile(prefix="mailvault-imap-") as spool:
            size = 0
            while True:
                items = [f"BODY.PEEK[]<{size}.{PIECE_BYTES}>".encode()]
                try:
                    data = self.client.fetch([uid], [*items, b"FLAGS"] if not size else items)
                except IMAPClientAbortError:
                    raise
                except IMAPClientError as exc:
                    if not self.client.folder_exists(folder.name):
                        raise FolderGone(
                            f"The folder {folder.path} vanished during the run."
                        ) from exc
                    on_problem(f"{folder.path}: UID {uid} could not be fetched: {exc}")
                    return []
                answer = data.pop(uid, None) or {}
                del data
                piece = next(
                    (
                        v
                        for k, v in answer.items()
                        if isinstance(k, bytes) and k.startswith(b"BODY[]")
                    ),
                    None,
                )
                if piece is None and not size:
                    on_problem(f"{folder.path}: UID {uid} could not be fetched (no body returned).")
                    return []
                if not size:
                    flags = frozenset(_flag_text(f) for f in answer.get(b"FLAGS", ()))
                del answer
                if piece:
                    spool.write(piece)
                    size += len(piece)
                if not piece or len(piece) < PIECE_BYTES:
                    break
                del piece
            spool.seek(0)
            raw = spool.read()
        return [Fetched(folder, uid, uidvalidity, raw, flags)]

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
        criteria: list[Any] = ["UID", f"1:{up_to_uid}"]
        if newer_than:
            criteria += ["SINCE", newer_than]
        if older_than:
            criteria += ["BEFORE", older_than]

        def listing(client: IMAPClient) -> tuple[int, list[int]]:
            uidvalidity = int(self._select(folder).get(b"UIDVALIDITY", 0))
            return uidvalidity, [int(u) for u in client.search(criteria)]

        # Both reconnect after a drop; fetch_uids also checks UIDVALIDITY each time.
        uidvalidity, found = self._command(folder, listing)
        uids = sorted(u for u in found if u <= up_to_uid and u not in skip)
        for start in range(0, len(uids), batch_size):
            chunk = uids[start : start + batch_size]
            yield self.fetch_uids(folder, chunk, uidvalidity, on_problem=on_problem)

    def _command(self, folder: FolderInfo, action: Callable[[IMAPClient], Any]) -> Any:
        """``_with_retry``; a command the server refuses (not a drop) is an ImapError."""

        def guarded(client: IMAPClient) -> Any:
            try:
                return action(client)
            except IMAPClientAbortError:
                raise
            except IMAPClientError as exc:
                raise ImapError(f"{folder.path}: the server refused a command: {exc}") from exc

        return self._with_retry(guarded)

    def snapshot(
        self, folder: FolderInfo, unchanged: Callable[[FolderSnapshot], bool] | None = None
    ) -> FolderSnapshot:
        """SELECT the folder (read-only) and list its UIDs, unless ``unchanged`` says the
        SELECT answer shows nothing new (then ``uids`` is None)."""

        def action(client: IMAPClient) -> FolderSnapshot:
            info = self._select(folder)
            modseq = info.get(b"HIGHESTMODSEQ")
            uidnext = info.get(b"UIDNEXT")
            snap = FolderSnapshot(
                uidvalidity=int(info.get(b"UIDVALIDITY", 0)),
                uidnext=int(uidnext) if uidnext is not None else None,
                exists=int(info.get(b"EXISTS", 0)),
                highest_modseq=int(modseq) if modseq is not None else None,
            )
            if unchanged is not None and unchanged(snap):
                return snap
            uids = frozenset(int(u) for u in client.search(["ALL"])) if snap.exists else frozenset()
            return FolderSnapshot(
                snap.uidvalidity, snap.uidnext, snap.exists, snap.highest_modseq, uids
            )

        return self._command(folder, action)

    def fetch_uids(
        self,
        folder: FolderInfo,
        uids: list[int],
        uidvalidity: int,
        *,
        before: date | None = None,
        on_problem: Callable[[str], None] = lambda text: None,
    ) -> list[Fetched]:
        """The messages ``uids`` (BODY.PEEK[] and FLAGS), reconnecting after a drop.
        UidValidityChanged when the folder's UIDVALIDITY is no longer ``uidvalidity``:
        the UIDs would name other messages. ``before``: only those with an INTERNALDATE
        before that day."""

        def action(client: IMAPClient) -> list[Fetched]:
            info = self._select(folder)
            now = int(info.get(b"UIDVALIDITY", 0))
            if now != uidvalidity:
                raise UidValidityChanged(
                    f"{folder.path}: UIDVALIDITY changed during the run ({uidvalidity} → {now})."
                )
            wanted = list(uids)
            if before is not None and wanted:
                found = set(client.search(["UID", _uid_set(wanted), "BEFORE", before]))
                wanted = [u for u in wanted if u in found]
            return self._fetch(folder, wanted, uidvalidity, on_problem) if wanted else []

        return self._command(folder, action)

    # --- deleting --------------------------------------------------------------------

    def delete(
        self,
        folder: FolderInfo,
        uids: list[int],
        *,
        uidvalidity: int | None = None,
        keep_flagged: bool = False,
    ) -> list[int]:
        """Mark ``uids`` deleted and expunge exactly them (UID EXPUNGE with UIDPLUS);
        returns the UIDs deleted. With ``uidvalidity``, nothing is deleted (ImapError)
        when the folder's UIDVALIDITY differs; with ``keep_flagged``, messages flagged
        meanwhile (and UIDs no longer there) are left out."""
        if not uids:
            return []
        attempted: set[int] = set()  # a drop after STORE/EXPUNGE may have deleted them

        def action(client: IMAPClient) -> list[int]:
            if not client.has_capability("UIDPLUS"):
                # A plain EXPUNGE would also remove what the user marked deleted.
                raise ImapError(f"{self.settings.host} lacks UIDPLUS: nothing is deleted.")
            info = client.select_folder(folder.name, readonly=False)
            now = int(info.get(b"UIDVALIDITY", 0))
            if uidvalidity is not None and now != uidvalidity:
                client.unselect_folder()
                raise UidValidityChanged(
                    f"{folder.path}: UIDVALIDITY changed ({uidvalidity} → {now}); "
                    "nothing there is deleted."
                )
            chosen = list(uids)
            if keep_flagged:
                unflagged = set(client.search(["UID", _uid_set(chosen), "UNFLAGGED"]))
                chosen = [u for u in chosen if u in unflagged]
            attempted.update(chosen)
            if chosen:
                client.add_flags(chosen, [b"\\Deleted"], silent=True)
                client.expunge(chosen)
            if keep_flagged and attempted:  # what is gone now, this attempt or an earlier one
                left = set(client.search(["UID", _uid_set(sorted(attempted))]))
                chosen = [u for u in uids if u in attempted and u not in left]
            client.unselect_folder()
            return chosen

        return self._command(folder, action)


def _uid_set(uids: list[int]) -> str:
    return ",".join(str(u) for u in uids)
