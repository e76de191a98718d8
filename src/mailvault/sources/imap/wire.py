"""Reading IMAP answers quickly: sequence sets, RFC822.SIZE and FETCH BODY[] answers.

imapclient's general response parser tokenizes every answer; for the few shapes the
archiving fetch asks for, regular expressions over imaplib's raw answers do the same for
a fraction of the CPU (and of the GIL the ingesting thread needs)."""

from __future__ import annotations

import re
from typing import Any

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

UID = re.compile(rb"\bUID (\d+)")
SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def ranges(uids: list[int]) -> str:
    """An IMAP sequence set of sorted ``uids``, runs written as ``first:last``."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


# One FETCH answer in its usual shape: "<seq> (UID <uid> FLAGS (<flags>) BODY[] {<n>}",
# the message as literal, then ")". MODSEQ (CONDSTORE) may come along.
_FETCH_HEAD = re.compile(rb"\d+ \((.*)BODY\[\] \{\d+\}\Z", re.DOTALL)
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")


def fetch_bodies(client: IMAPClient, uids: list[int]) -> dict[int, dict[bytes, Any]]:
    """``client.fetch(uids, FETCH_ITEMS)``, with the answers in their usual shape read
    by two regular expressions: imapclient's general parser tokenizes every answer and
    cost more than reading it off the socket. Any other shape goes to that parser."""
    imap = client._imap
    tag = imap._command("UID", "FETCH", ranges(uids), "(BODY.PEEK[] FLAGS)")
    typ, data = imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, data)
    typ, data = imap._untagged_response(typ, data, "FETCH")
    out: dict[int, dict[bytes, Any]] = {}
    items = iter(data)
    for item in items:
        head = _FETCH_HEAD.match(item[0]) if isinstance(item, tuple) else None
        uid = UID.search(head.group(1)) if head else None
        flags = _FLAGS.search(head.group(1)) if head else None
        if not (head and uid and flags) or next(items, None) != b")":
            out = {}
            break
        out[int(uid.group(1))] = {b"BODY[]": item[1], b"FLAGS": tuple(flags.group(1).split())}
    else:
        return {uid: out[uid] for uid in uids if uid in out}
    parsed = parse_fetch_response(data, client.normalise_times, True)
    return {uid: parsed[uid] for uid in uids if uid in parsed}
