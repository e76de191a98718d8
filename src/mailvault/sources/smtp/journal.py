"""Exchange journal reports, NDRs and plain copies: what to archive from a received mail.

Formats (shared/product/m365-protocol.md §5, MS-XJRNL §2.1):
- A journal report is marked by ``X-MS-Journal-Report``,
  ``X-MS-Exchange-Organization-Journal-Report`` or ``Content-Identifier: exjournalreport``.
  It is ``multipart/mixed``: a text/plain envelope part, then the original as
  ``message/rfc822`` (with journal report decryption: the encrypted original and a
  decrypted copy — both are kept).
- An NDR carries ``X-MS-Exchange-Message-Is-Ndr``: only the attached mail or journal
  report is archived; a journal report inside an NDR (alternate journaling mailbox) is
  unwrapped in turn.
- Anything else is a plain copy (Google Workspace, Postfix): archived as received and
  filed by its SMTP envelope recipients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from mailvault.sources.smtp.rawmime import RawPart, split_headers, walk

JOURNAL_MARKERS = ("x-ms-journal-report", "x-ms-exchange-organization-journal-report")
NDR_MARKER = "x-ms-exchange-message-is-ndr"
MAX_DEPTH = 3


class Kind(Enum):
    JOURNAL_REPORT = "journal_report"
    NDR = "ndr"
    PLAIN = "plain"


@dataclass
class Envelope:
    sender: str = ""
    on_behalf_of: str = ""
    subject: str = ""
    message_id: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)  # "Recipient:" lines
    # Addresses a recipient was reached through: distribution lists, forwarders.
    via: list[str] = field(default_factory=list)

    @property
    def all_addresses(self) -> list[str]:
        seen: dict[str, None] = {}
        for address in [
            self.sender,
            self.on_behalf_of,
            *self.to,
            *self.cc,
            *self.bcc,
            *self.recipients,
            *self.via,
        ]:
            if address:
                seen.setdefault(address, None)
        return list(seen)

    @property
    def all_recipients(self) -> list[str]:
        return list(dict.fromkeys([*self.to, *self.cc, *self.bcc, *self.recipients]))


@dataclass
class Unwrapped:
    """What to archive: each original's exact bytes, with the envelope that came with it
    (None for plain copies: their envelope is the SMTP one)."""

    kind: Kind
    originals: list[tuple[bytes, Envelope | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def classify(headers: RawPart) -> Kind:
    parsed = headers.headers
    names = {name.lower() for name in parsed}
    if names & set(JOURNAL_MARKERS):
        return Kind.JOURNAL_REPORT
    if str(parsed.get("Content-Identifier", "")).strip().lower() == "exjournalreport":
        return Kind.JOURNAL_REPORT
    if NDR_MARKER in names:
        return Kind.NDR
    return Kind.PLAIN


_ADDRESS = re.compile(r"[^\s<>,;:\"]+@[^\s<>,;:\"]+")


def _first_address(text: str) -> str:
    match = _ADDRESS.search(text)
    return match.group(0).strip(".").casefold() if match else ""


def parse_envelope(text: str) -> Envelope:
    envelope = Envelope()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        if key == "sender":
            envelope.sender = _first_address(value)
        elif key == "on-behalf-of":
            envelope.on_behalf_of = _first_address(value)
        elif key == "subject":
            envelope.subject = value
        elif key == "message-id":
            envelope.message_id = value
        elif key in ("to", "cc", "bcc", "recipient"):
            address_part, _, rest = value.partition(",")
            address = _first_address(address_part)
            if address:
                {
                    "to": envelope.to,
                    "cc": envelope.cc,
                    "bcc": envelope.bcc,
                    "recipient": envelope.recipients,
                }[key].append(address)
            # "Expanded: dl@…" / "Forwarded: user@…" after the comma.
            for extra in _ADDRESS.findall(rest):
                envelope.via.append(extra.strip(".").casefold())
    return envelope


def _attached_messages(report: RawPart) -> list[bytes]:
    return [
        part.decoded_body() for part in walk(report)[1:] if part.content_type == "message/rfc822"
    ]


def _envelope_part(report: RawPart) -> str | None:
    for part in walk(report)[1:]:
        if part.content_type == "text/plain":
            charset = part.headers.get_content_charset() or "utf-8"
            try:
                return part.decoded_body().decode(charset, "replace")
            except LookupError:
                return part.decoded_body().decode("latin-1", "replace")
    return None


def unwrap(raw: bytes, *, _depth: int = 0) -> Unwrapped:
    top = split_headers(raw)
    kind = classify(top)
    result = Unwrapped(kind)
    if kind is Kind.PLAIN or _depth >= MAX_DEPTH:
        result.originals.append((raw, None))
        return result
    attached = _attached_messages(top)
    if kind is Kind.JOURNAL_REPORT:
        text = _envelope_part(top)
        envelope = parse_envelope(text) if text is not None else None
        if envelope is None:
            result.problems.append("journal report without an envelope part")
        if not attached:
            result.problems.append("journal report without an attached original; kept whole")
            result.originals.append((raw, envelope))
            return result
        for original in attached:
            result.originals.append((original, envelope))
        return result
    # An NDR: archive only what it carries, unwrapping a journal report inside.
    if not attached:
        result.problems.append("NDR without an attached message; kept whole")
        result.originals.append((raw, None))
        return result
    for inner in attached:
        nested = unwrap(inner, _depth=_depth + 1)
        result.originals.extend(nested.originals)
        result.problems.extend(nested.problems)
    return result
