"""What the IMAP chaos tests fill the source with, and the checks they make afterwards.

The checks work on plain data (a snapshot of the source mailbox read directly from
Dovecot, a view of the archive), so the in-process test and the one driving a
``mailvault worker`` subprocess share them.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass

from imapclient import IMAPClient

from sources.dovecot_server import Dovecot

FOLDERS = ("INBOX", "Work", "Work/Old", "Lists")
FLAGGED_FOLDER = "Work/Old"  # its first message is flagged
HOLD_WORD = "zanzibar"  # only the held message has it; a query hold names it


def message(user: str, subject: str, size: int) -> bytes:
    body = "".join(f"line {n} of {subject}\r\n" for n in range(size // 20 + 1))
    return (
        f"From: Alice <alice@example.com>\r\nTo: {user}\r\nSubject: {subject}\r\n"
        "Date: Tue, 01 Oct 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@chaos.test>\r\n\r\n{body}"
    ).encode()


@dataclass
class Filled:
    """What was put in the source: the flagged and the held message by folder."""

    flagged: tuple[str, bytes]
    held: tuple[str, bytes]


def fill(imap: IMAPClient, user: str, *, per_folder: int = 7, seed: int = 3) -> Filled:
    """Several folders of messages of mixed sizes (some span several reads). In
    ``FLAGGED_FOLDER`` the first message is flagged; in INBOX one is under a legal hold;
    one message is in INBOX and in Lists (the same bytes: one stored copy, a placement
    in each)."""
    rng = random.Random(seed)
    for folder in FOLDERS[1:]:
        imap.create_folder(folder)
    shared = message(user, "in two folders", 900)
    flagged = held = b""
    for folder in FOLDERS:
        for n in range(per_folder):
            raw = message(user, f"{folder} {n}", rng.choice((300, 2500, 9000, 30000)))
            is_flagged = folder == FLAGGED_FOLDER and n == 0
            if folder == "INBOX" and n == 3:
                raw = raw.replace(b"line 0 of", f"{HOLD_WORD} line 0 of".encode(), 1)
                held = raw
            imap.append(folder, raw, flags=(b"\\Flagged",) if is_flagged else ())
            if is_flagged:
                flagged = raw
        if folder in ("INBOX", "Lists"):
            imap.append(folder, shared)
    return Filled(flagged=(FLAGGED_FOLDER, flagged), held=("Inbox", held))


def mirror(folder: str) -> str:
    return "Inbox" if folder == "INBOX" else folder


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def snapshot(server: Dovecot, user: str) -> Counter[tuple[str, str]]:
    """(archive folder path, SHA-256) of every message in the source now, read directly
    from Dovecot (not through the proxy)."""
    imap = server.client(user)
    found: Counter[tuple[str, str]] = Counter()
    try:
        for _flags, _delim, name in imap.list_folders():
            if name in ("Junk", "Trash", "Sent"):
                continue
            imap.select_folder(name, readonly=True)
            uids = imap.search("ALL")
            if uids:
                for data in imap.fetch(uids, ["BODY.PEEK[]"]).values():
                    found[(mirror(str(name)), sha(bytes(data[b"BODY[]"])))] += 1
            imap.unselect_folder()
    finally:
        imap.logout()
    return found


@dataclass
class ArchiveView:
    """The archive of the target mailbox as the checks need it."""

    placements: Counter[tuple[str, str]]  # (folder path, SHA-256) → placements
    stored: Counter[str]  # SHA-256 → Message rows
    verified: dict[str, bool]  # SHA-256 → the stored bytes hash to it


def unverified_deletions(
    ever: set[tuple[str, str]], now: Counter[tuple[str, str]], archive: ArchiveView
) -> list[str]:
    """Every message that was in the source and is gone must have a stored copy whose
    bytes hash to its SHA-256, filed in the same folder."""
    problems = []
    for folder, digest in sorted(ever):
        if now[(folder, digest)]:
            continue
        if not archive.placements[(folder, digest)]:
            problems.append(f"{folder} {digest[:12]}: deleted without an archived copy")
        elif not archive.verified.get(digest):
            problems.append(f"{folder} {digest[:12]}: deleted, archived copy does not verify")
    return problems


def not_exactly_once(ever: set[tuple[str, str]], archive: ArchiveView) -> list[str]:
    problems = []
    for folder, digest in sorted(ever):
        count = archive.placements[(folder, digest)]
        if count != 1:
            problems.append(f"{folder} {digest[:12]}: {count} placements")
        if archive.stored[digest] != 1:
            problems.append(f"{digest[:12]}: stored as {archive.stored[digest]} messages")
    return problems
