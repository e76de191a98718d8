"""The typed input and output of the ingestion pipeline."""

from __future__ import annotations

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


@dataclass
class IngestResult:
    message: Message
    stored: bool  # False: the bytes were in the archive already (deduplicated)
    placements_added: int
    problems: list[str] = field(default_factory=list)
