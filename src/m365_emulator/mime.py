"""Reading the few message properties Graph returns from the raw bytes, and building
messages sent inside the tenant."""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import SMTP


@dataclass
class Parsed:
    subject: str
    sender: tuple[str, str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    date: datetime.datetime
    internet_message_id: str
    body_preview: str


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:  # undecodable encoded-words: keep the raw header
        return str(value)


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [str(v) for v in msg.get_all(name, [])]
    return [(_text(n), a) for n, a in email.utils.getaddresses(values) if a]


def _preview(msg: Message) -> str:
    part = msg
    if msg.is_multipart():
        for candidate in msg.walk():
            if candidate.get_content_type() == "text/plain":
                part = candidate
                break
        else:
            return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("latin-1")
    return " ".join(text.split())[:255]


def parse(raw: bytes, fallback_date: datetime.datetime) -> Parsed:
    msg = message_from_bytes(raw)
    date = fallback_date
    if msg["Date"]:
        try:
            date = email.utils.parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError, IndexError):
            date = fallback_date
        if date.tzinfo is None:
            date = date.replace(tzinfo=datetime.UTC)
    senders = _addresses(msg, "From") or [("", "")]
    return Parsed(
        subject=_text(msg["Subject"]),
        sender=senders[0],
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        date=date.astimezone(datetime.UTC),
        internet_message_id=str(msg["Message-ID"] or "").strip(),
        body_preview=_preview(msg),
    )


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose(
    sender: tuple[str, str],
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    domain: str,
    when: datetime.datetime | None = None,
) -> bytes:
    """A message as Outlook would send it (without Bcc: the envelope carries those)."""
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr(sender)
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(when or datetime.datetime.now(datetime.UTC))
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    msg["MIME-Version"] = "1.0"
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)
