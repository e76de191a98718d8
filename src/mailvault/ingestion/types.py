"""The typed input and output of the ingestion pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailvault.archive.models import Mailbox, Message


@dataclass(frozen=True)
class Target:
    """File the message into this mailbox, in the folder at ``folder_path`` ("" = root)."""

    mailbox: Mailbox
    folder_path: str = ""


@dataclass
class IngestRequest:
    raw: bytes
    source: str  # a Message.Source value
    targets: list[Target] = field(default_factory=list)
    # Also file into the mailbox of every one of these addresses that belongs to the
    # tenant (primary or secondary address). Unknown addresses are ignored.
    file_by_addresses: list[str] = field(default_factory=list)
    envelope_from: str = ""
    envelope_recipients: list[str] = field(default_factory=list)
    source_ref: str = ""


class IngestResult:
    """What became of one request. For a message the request recorded, ``message`` is
    made from the values it was recorded with the first time it is asked for (a bulk
    import never asks: a model instance per message cost it 6 % of its time)."""

    __slots__ = ("_load", "_message", "placements_added", "problems", "stored")

    def __init__(
        self,
        message: Message | Callable[[], Message],
        stored: bool,  # False: the bytes were in the archive already (deduplicated)
        placements_added: int,
        problems: list[str] | None = None,
    ) -> None:
        if isinstance(message, Message):
            self._message: Message | None = message
            self._load: Callable[[], Message] | None = None
        else:
            self._message, self._load = None, message
        self.stored = stored
        self.placements_added = placements_added
        self.problems = problems if problems is not None else []

    @property
    def message(self) -> Message:
        if self._message is None:
            assert self._load is not None
            self._message = self._load()
        return self._message

    def __repr__(self) -> str:
        return (
            f"IngestResult(stored={self.stored}, placements_added={self.placements_added}, "
            f"problems={self.problems!r})"
        )
