"""One Exchange Online mailbox through Graph: its folder tree, per-folder message deltas,
and each message's MIME.

Everything goes through :class:`~mailvault.sources.graph.client.GraphClient`, which owns
paging, ``Retry-After``, backoff and the limit of four concurrent requests per mailbox;
this module only knows the mail resources (m365-protocol.md §3 "Mail folders",
"Messages"). Ids are requested as immutable ids so a message moved between folders keeps
its id. A folder whose delta token expired (``410``) is read again from the start and
the result says so (``resynced``): the caller reconciles by content hash, so nothing is
archived twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

from mailvault.sources.graph.client import (
    MAILBOX_CONCURRENCY,
    GraphClient,
    GraphError,
    ResyncRequired,
)

log = logging.getLogger("mailvault.sources.graph")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
DELTA_PAGE_SIZE = 200
DELTA_SELECT = "internetMessageId,receivedDateTime,subject,parentFolderId,flag"
SEARCH_FOLDER = "#microsoft.graph.mailSearchFolder"
# Well-known folders an archive usually leaves out; the caller decides.
JUNK_AND_DELETED = ("junkemail", "deleteditems", "recoverableitemsdeletions")


@dataclass(frozen=True)
class MailFolder:
    id: str
    path: str  # display names from the top, joined by "/"
    parent_id: str
    total: int
    well_known: str = ""  # "inbox", "sentitems", … when it is one of those


@dataclass(frozen=True)
class MessageRef:
    id: str
    internet_message_id: str
    received: str
    flagged: bool


@dataclass
class FolderChanges:
    added: list[MessageRef] = field(default_factory=list)  # created or updated
    removed: list[str] = field(default_factory=list)  # ids gone from this folder
    delta_link: str = ""
    resynced: bool = False  # the delta token had expired: this is a full read


class MailboxReader:
    """Reads one user's mailbox; thread-safe as long as the client is."""

    def __init__(self, client: GraphClient, user_id: str) -> None:
        self.client = client
        self.user_id = user_id
        self._user = f"/users/{quote(user_id, safe='')}"

    # --- folders ---------------------------------------------------------------------

    def well_known_ids(self, names: Iterable[str]) -> dict[str, str]:
        """The ids of well-known folders (``inbox``, ``junkemail`` …) that exist."""
        found: dict[str, str] = {}
        for name in names:
            try:
                data = self.client.get(
                    f"{self._user}/mailFolders/{name}",
                    params={"$select": "id"},
                    headers={"Prefer": IMMUTABLE_IDS},
                    mailbox=self.user_id,
                )
            except GraphError as exc:
                if exc.status == 404:
                    continue
                raise
            if data.get("id"):
                found[name] = str(data["id"])
        return found

    def folders(self, *, well_known: Iterable[str] = ()) -> list[MailFolder]:
        """Every mail folder, depth first, search folders left out."""
        names = {v: k for k, v in self.well_known_ids(well_known).items()}
        result: list[MailFolder] = []
        stack: list[tuple[str, str, str]] = [(f"{self._user}/mailFolders", "", "")]
        while stack:
            url, prefix, parent = stack.pop()
            for item in self.client.items(
                url,
                params={"$top": 100},
                headers={"Prefer": IMMUTABLE_IDS},
                mailbox=self.user_id,
            ):
                if item.get("@odata.type") == SEARCH_FOLDER:
                    continue
                folder_id = str(item["id"])
                name = str(item.get("displayName") or folder_id).replace("/", "_")
                path = f"{prefix}/{name}" if prefix else name
                result.append(
                    MailFolder(
                        id=folder_id,
                        path=path,
                        parent_id=parent,
                        total=int(item.get("totalItemCount") or 0),
                        well_known=names.get(folder_id, ""),
                    )
                )
                if int(item.get("childFolderCount") or 0) > 0:
                    stack.append(
                        (f"{self._user}/mailFolders/{folder_id}/childFolders", path, folder_id)
                    )
        return result

    # --- messages --------------------------------------------------------------------

    def _initial_delta(self, folder_id: str) -> str:
        return f"{self._user}/mailFolders/{quote(folder_id, safe='')}/messages/delta"

    def changes(self, folder_id: str, delta_link: str = "") -> FolderChanges:
        """What changed in a folder since ``delta_link`` (everything when empty)."""
        headers = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={DELTA_PAGE_SIZE}"}
        resynced = False
        link = delta_link
        for _attempt in range(3):
            try:
                if link:
                    items, new_link = self.client.delta(link, headers=headers, mailbox=self.user_id)
                else:
                    items, new_link = self.client.delta(
                        self._initial_delta(folder_id),
                        params={"$select": DELTA_SELECT},
                        headers=headers,
                        mailbox=self.user_id,
                    )
                break
            except ResyncRequired as exc:
                log.info("folder %s of %s: %s; reading it again", folder_id, self.user_id, exc)
                resynced = True
                link = exc.location or ""
        else:
            raise GraphError(f"The folder {folder_id} kept asking for a resync.")
        changes = FolderChanges(delta_link=new_link, resynced=resynced or not delta_link)
        for item in items:
            message_id = str(item.get("id", ""))
            if not message_id:
                continue
            if "@removed" in item:
                changes.removed.append(message_id)
                continue
            flag = item.get("flag") or {}
            changes.added.append(
                MessageRef(
                    id=message_id,
                    internet_message_id=str(item.get("internetMessageId") or ""),
                    received=str(item.get("receivedDateTime") or ""),
                    flagged=isinstance(flag, dict) and flag.get("flagStatus") == "flagged",
                )
            )
        return changes

    def mime(self, message_id: str) -> bytes:
        """The message exactly as Exchange has it (RFC 5322 bytes)."""
        response = self.client.request(
            "GET",
            f"{self._user}/messages/{quote(message_id, safe='')}/$value",
            headers={"Prefer": IMMUTABLE_IDS},
            mailbox=self.user_id,
        )
        return response.content

    def mime_many(self, message_ids: Iterable[str]) -> Iterator[tuple[str, bytes | None, str]]:
        """``(id, bytes, "")`` per message, or ``(id, None, reason)`` when one cannot be
        fetched (gone meanwhile, refused): the run goes on and reports it. Up to four at a
        time, the mailbox's concurrency limit."""

        def one(message_id: str) -> tuple[str, bytes | None, str]:
            try:
                return message_id, self.mime(message_id), ""
            except GraphError as exc:
                return message_id, None, str(exc)

        # A bounded window of fetches in flight, so memory stays bounded however big the
        # folder (Executor.map would start every fetch at once).
        window: deque[Future[tuple[str, bytes | None, str]]] = deque()
        with ThreadPoolExecutor(MAILBOX_CONCURRENCY, thread_name_prefix="graph-mime") as pool:
            for message_id in message_ids:
                window.append(pool.submit(one, message_id))
                if len(window) >= 2 * MAILBOX_CONCURRENCY:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def delete(self, message_id: str, *, permanently: bool = False) -> None:
        path = f"{self._user}/messages/{quote(message_id, safe='')}"
        if permanently:
            self.client.request("POST", f"{path}/permanentDelete", mailbox=self.user_id)
        else:
            self.client.request("DELETE", path, mailbox=self.user_id)
