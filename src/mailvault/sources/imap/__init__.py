"""IMAP source (imapclient): folders, incremental UID sync, batched BODY.PEEK[] fetches."""

from mailvault.sources.imap.client import ImapError, ImapLoginError, ImapSettings, connect
from mailvault.sources.imap.sync import (
    Fetched,
    FetchedBatch,
    FolderGone,
    FolderInfo,
    FolderSnapshot,
    FolderState,
    ImapSession,
    UidValidityChanged,
)

__all__ = [
    "Fetched",
    "FetchedBatch",
    "FolderGone",
    "FolderInfo",
    "FolderSnapshot",
    "FolderState",
    "ImapError",
    "ImapLoginError",
    "ImapSession",
    "ImapSettings",
    "UidValidityChanged",
    "connect",
]
