"""Value types of the search API: what goes into the index, who may search, what comes out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SortOrder = Literal["date", "relevance"]


@dataclass(frozen=True)
class Address:
    """A mailbox address with its display name (``name`` may be empty)."""

    address: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass
class IndexDocument:
    """One archived message as the index sees it (a projection of the archive).

    ``message_id`` is the archive's message primary key; one document per message even
    when the message sits in several mailboxes and folders. ``bcc`` and
    ``envelope_recipients`` are only searchable with :meth:`Scope.whole_tenant`.
    """

    message_id: int
    mailbox_ids: list[int]
    date: datetime
    subject: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    envelope_recipients: list[str] = field(default_factory=list)
    folder_paths: list[str] = field(default_factory=list)
    archived_at: datetime | None = None
    body: str = ""
    attachment_names: list[str] = field(default_factory=list)
    attachment_text: str = ""
    size: int = 0
    has_attachment: bool = False

    def __post_init__(self) -> None:
        if self.date.tzinfo is None or (
            self.archived_at is not None and self.archived_at.tzinfo is None
        ):
            raise ValueError("IndexDocument dates must be timezone-aware")
        if self.message_id < 0 or self.size < 0 or (self.mailbox_ids and min(self.mailbox_ids) < 0):
            raise ValueError("IndexDocument ids and size must not be negative")


_SCOPE_KEY = object()


class Scope:
    """The permission filter every search carries; build it with a class method.

    ``Scope.mailboxes(ids)`` is a Reader's view (the mailboxes it owns or that are
    shared with its groups; an empty set finds nothing). ``Scope.whole_tenant()`` is the
    Compliance view: every message of the tenant, with Bcc and envelope recipients
    searchable. The caller decides which one a user gets; the index enforces it.
    """

    __slots__ = ("_mailbox_ids",)

    def __init__(self, key: object, mailbox_ids: frozenset[int] | None) -> None:
        if key is not _SCOPE_KEY:
            raise TypeError("use Scope.mailboxes(ids) or Scope.whole_tenant()")
        self._mailbox_ids = mailbox_ids

    @classmethod
    def mailboxes(cls, mailbox_ids: Iterable[int]) -> Scope:
        ids = frozenset(int(m) for m in mailbox_ids)
        return cls(_SCOPE_KEY, ids)

    @classmethod
    def whole_tenant(cls) -> Scope:
        return cls(_SCOPE_KEY, None)

    @property
    def is_whole_tenant(self) -> bool:
        return self._mailbox_ids is None

    @property
    def mailbox_ids(self) -> frozenset[int] | None:
        """The allowed mailboxes, or None for the whole tenant."""
        return self._mailbox_ids

    def __repr__(self) -> str:
        if self._mailbox_ids is None:
            return "Scope.whole_tenant()"
        return f"Scope.mailboxes({sorted(self._mailbox_ids)})"


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    date: datetime
    subject: str
    sender: Address | None
    mailbox_ids: tuple[int, ...]
    snippet_html: str  # HTML-escaped text, matches wrapped in <b>...</b>
    subject_html: str  # the subject, escaped, with matches highlighted
    score: float | None  # relevance score; None when sorted by date


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[SearchHit]
    # True when ``total`` is an estimate: a phrase over the body was checked only for the
    # candidates needed for this page (see TenantIndex.search); the hits are exact.
    total_is_estimate: bool = False
