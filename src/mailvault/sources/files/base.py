"""Item types shared by the file readers."""

from __future__ import annotations

from dataclasses import dataclass


class ImportRefused(PermissionError):
    """The path is outside the allowed import roots; nothing was read."""


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One message read from a file.

    ``raw`` is the exact original RFC 5322 bytes (for MSG/PST: the reconstructed message,
    see :mod:`.outlook`). ``source_ref`` is a stable key unique within the import, usable
    to skip already imported items when an import is resumed. ``problem`` is set when the
    item was read but something is off (e.g. a truncated last MBOX message).
    """

    folder_path: str
    raw: bytes
    source_ref: str
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """An item (or a whole file) that could not be read; the import goes on."""

    source_ref: str
    reason: str


ImportEvent = ImportItem | ImportProblem


def esc(part: str) -> str:
    """Escape a path or folder so ``:`` and ``!`` keep their meaning in a source_ref."""
    return part.replace("%", "%25").replace(":", "%3A").replace("!", "%21")


def join_folder(*parts: str) -> str:
    return "/".join(p for p in parts if p)
