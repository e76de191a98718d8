"""IMAP source (imapclient): folders, incremental UID sync, batched BODY.PEEK[] fetches."""

from mailvault.sources.imap.client import ImapError, ImapLoginError, ImapSettings, connect
from mailvault.sources.imap.sync import Fetched, FolderGone, FolderInfo, FolderState, ImapSession

__all__ = [
    "Fetched",
    "FolderGone",
    "FolderInfo",
    "FolderState",
    "ImapError",
    "ImapLoginError",
    "ImapSession",
    "ImapSettings",
    "connect",
]
