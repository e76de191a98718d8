"""Readers that turn import files into a stream of messages for the ingestion pipeline.

``iter_items(path, allowed_roots=...)`` yields :class:`ImportItem` (one message, its
folder, its exact bytes, a resumable ``source_ref``) and :class:`ImportProblem` (an item
or file that could not be read) in a deterministic order. Supported: EML files and
directories of them, MBOX (including pipermail text archives), maildir, PST/OST (libpff),
Outlook MSG (extract-msg), and ZIP archives of all of these.
"""

from .base import ImportEvent, ImportItem, ImportProblem, ImportRefused
from .reader import check_allowed, estimate_total, iter_items

__all__ = [
    "ImportEvent",
    "ImportItem",
    "ImportProblem",
    "ImportRefused",
    "check_allowed",
    "estimate_total",
    "iter_items",
]
