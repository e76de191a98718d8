"""One Exchange Online mailbox through Graph: its folder tree, per-folder message deltas,
and each message's MIME.

Everything goes through :class:`~mailvault.sources.graph.client.GraphClient`, which owns
paging, ``Retry-After``, backoff and the limit of four concurrent requests per mailbox;
this module only knows the mail resources (m365-protocol.md §3 "Mail folders",
"Messages"). Ids are requested as immutable ids so a message moved between folders keeps
its id. A folder whose delta token expired (``410``) is read again from the start and
the result says so (``resynced``): the caller reconciles by content hash, so nothing is
archived twice. MIME comes twenty messages to a ``$batch``, except messages with
attachments (``hasAttachments`` in the delta), fetched one by one to bound memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from mailvault.sources.graph.client import (
    MAX_BATCH,
    GraphClient,
    GraphError,
    ResyncRequired,
)

log = logging.getLogger("mailvault.sources.graph")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
DELTA_PAGE_SIZE = 200
DELTA_SELECT = "internetMessageId,receivedDateTime,subject,parentFolderId,flag,hasAttachments"
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
    # Graph's hasAttachments; None when the delta link predates its $select. Those with
    # attachments may be big: they are fetched outside a $batch (see mime_many).
    has_attachments: bool | None = None


@dataclass
class FolderChanges:
    added: list[MessageRef] = field(default_factory=list)  # created or updated
    removed: list[str] = field(default_factory=list)  # ids gone from this folder
    delta_link: str = ""
    resynced: bool = False  # the delta token had expired: this is a full read
    restarted: bool = False  # change_pages: a resync began here (earlier pages void)


def _page_changes(
    page: dict[str, object], delta_link: str, resynced: bool, restarted: bool
) -> FolderChanges:
    changes = FolderChanges(delta_link=delta_link, resynced=resynced, restarted=restarted)
    items = page.get("value")
    for item in items if isinstance(items, list) else []:
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
                has_attachments=(
                    bool(item["hasAttachments"]) if "hasAttachments" in item else None
                ),
            )
        )
    return changes


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
        result = FolderChanges()
        for page in self.change_pages(folder_id, delta_link):
            if page.restarted:
                result = FolderChanges()
            result.added += page.added
            result.removed += page.removed
            result.delta_link = page.delta_link or result.delta_link
            result.resynced = page.resynced
        return result

    def change_pages(self, folder_id: str, delta_link: str = "") -> Iterator[FolderChanges]:
        """:meth:`changes` a page at a time, so memory stays flat however big the folder:
        the last page carries the delta link. After a ``410`` the read starts again from
        the fresh full query: those pages have ``resynced`` set, and the first of them
        ``restarted`` (what the earlier pages said is read again)."""
        headers = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={DELTA_PAGE_SIZE}"}
        resynced, restarted = not delta_link, False
        link = delta_link
        for _attempt in range(3):
            try:
                if link:
                    pages = self.client.pages(link, headers=headers, mailbox=self.user_id)
                else:
                    pages = self.client.pages(
                        self._initial_delta(folder_id),
                        params={"$select": DELTA_SELECT},
                        headers=headers,
                        mailbox=self.user_id,
                    )
                new_link = ""
                for page in pages:
                    new_link = str(page.get("@odata.deltaLink") or "")
                    yield _page_changes(page, new_link, resynced, restarted)
                    restarted = False
                if not new_link:
                    raise GraphError("The delta query ended without a deltaLink.")
                return
            except ResyncRequired as exc:
                log.info("folder %s of %s: %s; reading it again", folder_id, self.user_id, exc)
                resynced = restarted = True
                link = exc.location or ""
        raise GraphError(f"The folder {folder_id} kept asking for a resync.")

    def mime(self, message_id: str) -> bytes:
        """The message exactly as Exchange has it (RFC 5322 bytes)."""
        response = self.client.request(
            "GET",
            f"{self._user}/messages/{quote(message_id, safe='')}/$value",
            headers={"Prefer": IMMUTABLE_IDS},
            mailbox=self.user_id,
        )
        return response.content

    def mime_many(
        self, message_ids: Iterable[str], *, alone: Container[str] = frozenset()
    ) -> Iterator[tuple[str, bytes | None, str]]:
        """``(id, bytes, "")`` per message, in order, or ``(id, None, reason)`` when one
        cannot be fetched (gone meanwhile, refused): the run goes on and reports it.
        Twenty at a time in one ``$batch`` (which holds the mailbox's four slots), so
        memory stays bounded however big the folder. The ids in ``alone`` (messages with
        attachments, which may be big) are fetched one by one: a ``$batch`` answer
        carries its bodies base64-encoded in one JSON document, so twenty messages of
        25 MB would be held several times over (the text, the parsed JSON, the bytes)."""
        ids = iter(message_ids)
        while chunk := list(itertools.islice(ids, MAX_BATCH)):
            batched = [mid for mid in chunk if mid not in alone]
            answers = {mid: (raw, why) for mid, raw, why in self._mime_batch(batched)}
            for mid in chunk:
                raw, why = answers[mid] if mid in answers else self._mime_alone(mid)
                yield mid, raw, why

    def mime_of(self, refs: list[MessageRef]) -> Iterator[tuple[str, bytes | None, str]]:
        """:meth:`mime_many` for messages a delta listed: those with attachments alone."""
        alone = {r.id for r in refs if r.has_attachments}
        return self.mime_many((r.id for r in refs), alone=alone)

    def _mime_alone(self, message_id: str) -> tuple[bytes | None, str]:
        try:
            return self.mime(message_id), ""
        except GraphError as exc:
            return None, f"Graph GET message {message_id} $value: {exc}"

    def _mime_batch(self, chunk: list[str]) -> Iterator[tuple[str, bytes | None, str]]:
        if not chunk:
            return
        requests = [
            {
                "method": "GET",
                "url": f"{self._user}/messages/{quote(mid, safe='')}/$value",
                "headers": {"Prefer": IMMUTABLE_IDS},
            }
            for mid in chunk
        ]
        try:
            answers = self.client.batch(requests, mailbox=self.user_id)
        except GraphError as exc:
            for mid in chunk:
                yield mid, None, str(exc)
            return
        for mid, answer in zip(chunk, answers, strict=True):
            if answer.status == 200 and isinstance(answer.body, bytes):
                yield mid, answer.body, ""
            else:
                code, message = answer.error()
                why = f"{answer.status} {code}: {message}"
                yield mid, None, f"Graph GET message {mid} $value: {why}"

    def delete(self, message_id: str, *, permanently: bool = False) -> None:
        path = f"{self._user}/messages/{quote(message_id, safe='')}"
        if permanently:
            self.client.request("POST", f"{path}/permanentDelete", mailbox=self.user_id)
        else:
            self.client.request("DELETE", path, mailbox=self.user_id)
