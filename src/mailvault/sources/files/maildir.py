"""Maildir (and Maildir++ subfolders ``.Sub.Folder`` → ``Sub/Folder``)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path

MAILDIR_SUBDIRS = ("cur", "new")
_MUTF7 = re.compile(r"&([A-Za-z0-9+,]*)-")


def is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in MAILDIR_SUBDIRS)


def decode_mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 §5.1.3), as Dovecot and Courier name folders."""

    def repl(m: re.Match[str]) -> str:
        chunk = m.group(1)
        if not chunk:
            return "&"
        data = chunk.replace(",", "/")
        data += "=" * (-len(data) % 4)
        try:
            return base64.b64decode(data).decode("utf-16-be")
        except ValueError:
            return m.group(0)

    return _MUTF7.sub(repl, name)


def maildirpp_folder(dirname: str) -> str:
    """``.Sub.Folder`` → ``Sub/Folder`` (a ``/`` inside a name becomes ``_``)."""
    parts = dirname.lstrip(".").split(".")
    return "/".join(decode_mutf7(p).replace("/", "_") for p in parts if p)


def unique_name(filename: str) -> str:
    """The part of a maildir file name that survives moves new→cur and flag changes."""
    return filename.split(":", 1)[0].split("!", 1)[0]


def maildir_folders(root: Path) -> list[tuple[str, Path]]:
    """(folder path, directory) of the maildir root and its Maildir++ subfolders, sorted."""
    out = [("", root)]
    with os.scandir(root) as it:
        subs = sorted(e.name for e in it if e.name.startswith(".") and e.is_dir())
    out += [
        (maildirpp_folder(n), root / n)
        for n in subs
        if n not in (".", "..") and is_maildir(root / n)
    ]
    return out


def maildir_files(folder_dir: Path) -> Iterator[Path]:
    for sub in MAILDIR_SUBDIRS:
        directory = folder_dir / sub
        if not directory.is_dir():
            continue
        with os.scandir(directory) as it:
            names = sorted(e.name for e in it if e.is_file() and not e.name.startswith("."))
        for name in names:
            yield directory / name
