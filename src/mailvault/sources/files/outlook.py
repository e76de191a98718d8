"""PST/OST (libpff) and MSG (extract-msg) readers; see :mod:`.mimebuild` for the rebuild.

Only mail-like items are imported (message classes ``IPM.Note*``, ``IPM.Schedule*``,
``IPM.Post*``, ``REPORT.*`` and items without a class); contacts, appointments, tasks and
distribution lists are skipped silently. Folder paths start below the mailbox's top folder
("Top of Personal Folders" in a PST, ``IPM_SUBTREE`` in an OST); a ``/`` inside a folder
name becomes ``_``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import ImportEvent, ImportItem, ImportProblem, esc, join_folder
from .mimebuild import Attachment, OutlookMessage, address, build_message, date_header, header_value

_TOP_NAMES = {"top of personal folders", "top of outlook data file", "top of information store"}
_MAIL_CLASSES = ("IPM.NOTE", "IPM.SCHEDULE", "IPM.POST", "REPORT.")
_RECIPIENT_HEADERS = {1: "To", 2: "Cc", 3: "Bcc"}

# MAPI property tags
PR_MESSAGE_CLASS = 0x001A
PR_SUBJECT = 0x0037
PR_SENDER_NAME = 0x0C1A
PR_SENDER_EMAIL = 0x0C1F
PR_SENDER_SMTP = 0x5D01
PR_SENT_REPRESENTING_EMAIL = 0x0065
PR_MESSAGE_ID = 0x1035
PR_IN_REPLY_TO = 0x1042
PR_REFERENCES = 0x1039
PR_RECIPIENT_TYPE = 0x0C15
PR_DISPLAY_NAME = 0x3001
PR_EMAIL_ADDRESS = 0x3003
PR_SMTP_ADDRESS = 0x39FE
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_MIME_TAG = 0x370E
PR_ATTACH_CONTENT_ID = 0x3712
ATTACH_EMBEDDED_MSG = 5


def is_mail_class(message_class: str | None) -> bool:
    return not message_class or message_class.upper().startswith(_MAIL_CLASSES)


# --- PST / OST -------------------------------------------------------------------------


def _props(item: Any) -> dict[int, Any]:
    out: dict[int, Any] = {}
    try:
        record_sets = list(item.record_sets)
    except Exception:  # libpff raises plain OSError/IOError variants
        return out
    for rs in record_sets[:1]:
        for entry in rs.entries:
            out.setdefault(entry.entry_type, entry)
    return out


def _str(props: dict[int, Any], tag: int) -> str | None:
    entry = props.get(tag)
    if entry is None:
        return None
    try:
        value = entry.data_as_string
    except Exception:
        return None
    return value or None


def _int(props: dict[int, Any], tag: int) -> int | None:
    entry = props.get(tag)
    try:
        return None if entry is None else int(entry.data_as_integer)
    except Exception:
        return None


def _decode(data: bytes | None) -> str | None:
    if data is None:
        return None
    data = data.rstrip(b"\x00")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _pst_headers(msg: Any, props: dict[int, Any]) -> list[tuple[str, str]]:
    sender = _str(props, PR_SENDER_SMTP) or _str(props, PR_SENDER_EMAIL)
    sender = sender or _str(props, PR_SENT_REPRESENTING_EMAIL)
    headers = [("From", address(_str(props, PR_SENDER_NAME) or msg.sender_name, sender))]
    by_type: dict[str, list[str]] = {}
    recipients = msg.recipients
    if recipients is not None:
        for rs in recipients.record_sets:
            rp = {e.entry_type: e for e in rs.entries}
            kind = _RECIPIENT_HEADERS.get(_int(rp, PR_RECIPIENT_TYPE) or 1, "To")
            addr = _str(rp, PR_SMTP_ADDRESS) or _str(rp, PR_EMAIL_ADDRESS)
            by_type.setdefault(kind, []).append(address(_str(rp, PR_DISPLAY_NAME), addr))
    headers += [(k, ", ".join(v)) for k, v in by_type.items()]
    subject = msg.subject or _str(props, PR_SUBJECT) or ""
    if subject.startswith("\x01") and len(subject) >= 2:
        subject = subject[2:]  # PR_SUBJECT's normalized-subject prefix marker
    headers.append(("Subject", header_value(subject)))
    when = msg.client_submit_time or msg.delivery_time
    headers.append(("Date", date_header(when) or ""))
    for name, tag in (
        ("Message-ID", PR_MESSAGE_ID),
        ("In-Reply-To", PR_IN_REPLY_TO),
        ("References", PR_REFERENCES),
    ):
        headers.append((name, _str(props, tag) or ""))
    return headers


def _pst_attachment(att: Any, index: int, problems: list[str]) -> Attachment | None:
    props = _props(att)
    name = _str(props, PR_ATTACH_LONG_FILENAME) or _str(props, PR_ATTACH_FILENAME)
    name = name or f"attachment-{index + 1}"
    if _int(props, PR_ATTACH_METHOD) == ATTACH_EMBEDDED_MSG:
        # pypff exposes an attached message as a sub item when it can; otherwise say so.
        try:
            inner = att.get_sub_item(0) if att.number_of_sub_items else None
            if inner is not None and hasattr(inner, "plain_text_body"):
                return Attachment(name, b"", embedded=build_message(_pst_message(inner)))
        except Exception as exc:
            problems.append(f"embedded message {name!r} not converted: {exc}")
            return None
        problems.append(f"embedded message {name!r} not readable with libpff, left out")
        return None
    size = att.size or 0
    data = att.read_buffer(size) if size else b""
    mime = _str(props, PR_ATTACH_MIME_TAG) or "application/octet-stream"
    return Attachment(name, data, mime, _str(props, PR_ATTACH_CONTENT_ID))


def _pst_message(msg: Any, problems: list[str] | None = None) -> OutlookMessage:
    problems = problems if problems is not None else []
    props = _props(msg)
    out = OutlookMessage("pst", transport_headers=msg.transport_headers)
    if not out.transport_headers:
        out.headers = _pst_headers(msg, props)
    out.plain = _decode(msg.plain_text_body)
    out.html = _decode(msg.html_body)
    if out.plain is None and out.html is None:
        out.rtf = msg.rtf_body
    for i in range(msg.number_of_attachments):
        att = _pst_attachment(msg.get_attachment(i), i, problems)
        if att is not None:
            out.attachments.append(att)
    return out


def _ipm_root(root: Any) -> Any:
    """The folder holding the user's mail folders (fallback: the root itself)."""
    queue = [(root, 0)]
    while queue:
        folder, depth = queue.pop(0)
        name = (folder.name or "").lower()
        if name in _TOP_NAMES or (name == "ipm_subtree" and folder.number_of_sub_folders):
            return folder
        if depth < 2:
            queue += [
                (folder.get_sub_folder(i), depth + 1) for i in range(folder.number_of_sub_folders)
            ]
    return root


def _open_pst(path: Path) -> Any:
    import pypff

    pst = pypff.file()
    pst.open(str(path))
    return pst


def read_pst(path: Path, *, ref_prefix: str, folder_base: str) -> Iterator[ImportEvent]:
    """Yield the mail items of a PST/OST file, folder by folder (store order)."""
    try:
        pst = _open_pst(path)
        top = _ipm_root(pst.root_folder)
    except Exception as exc:  # libpff reports corruption as OSError etc.
        yield ImportProblem(ref_prefix, f"cannot open PST/OST file: {exc}")
        return
    try:
        yield from _walk_pst(top, [], ref_prefix, folder_base)
    finally:
        pst.close()


def _walk_pst(folder: Any, names: list[str], ref_prefix: str, base: str) -> Iterator[ImportEvent]:
    folder_path = join_folder(base, "/".join(names))
    for i in range(folder.number_of_sub_messages):
        ref = f"{ref_prefix}:{esc('/'.join(names))}:#{i}"
        try:
            msg = folder.get_sub_message(i)
            ref = f"{ref_prefix}:{esc('/'.join(names))}:{msg.identifier}"
            if not hasattr(msg, "transport_headers"):
                continue  # not a message (free/busy data and the like)
            if not is_mail_class(_str(_props(msg), PR_MESSAGE_CLASS)):
                continue
            problems: list[str] = []
            raw = build_message(_pst_message(msg, problems))
        except Exception as exc:
            yield ImportProblem(ref, f"cannot read item: {exc}")
            continue
        yield ImportItem(folder_path, raw, ref, "; ".join(problems) or None)
    for j in range(folder.number_of_sub_folders):
        try:
            sub = folder.get_sub_folder(j)
            name = (sub.name or f"folder-{j}").replace("/", "_")
        except Exception as exc:
            yield ImportProblem(f"{ref_prefix}:{esc('/'.join(names))}:folder{j}", str(exc))
            continue
        yield from _walk_pst(sub, [*names, name], ref_prefix, base)


def count_pst(path: Path) -> int:
    """Item count from folder metadata (includes non-mail items: an estimate)."""
    pst = _open_pst(path)
    try:
        total = 0
        stack = [_ipm_root(pst.root_folder)]
        while stack:
            folder = stack.pop()
            total += folder.number_of_sub_messages
            stack += [folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders)]
        return total
    finally:
        pst.close()


# --- MSG -------------------------------------------------------------------------------


def _addresses(value: str | None) -> str:
    # extract-msg joins recipients with "; "
    return ", ".join(a.strip() for a in (value or "").split(";") if a.strip())


def _msg_message(msg: Any, problems: list[str]) -> OutlookMessage:
    from extract_msg.msg_classes.message_base import MessageBase

    out = OutlookMessage("msg", transport_headers=getattr(msg, "headerText", None))
    if not out.transport_headers:
        date = getattr(msg, "date", None)
        out.headers = [
            ("From", header_value(getattr(msg, "sender", None) or "")),
            ("To", header_value(_addresses(getattr(msg, "to", None)))),
            ("Cc", header_value(_addresses(getattr(msg, "cc", None)))),
            ("Bcc", header_value(_addresses(getattr(msg, "bcc", None)))),
            ("Subject", header_value(msg.subject or "")),
            ("Date", (date_header(date) or "") if isinstance(date, dt.datetime) else ""),
            ("Message-ID", getattr(msg, "messageId", None) or ""),
            ("In-Reply-To", getattr(msg, "inReplyTo", None) or ""),
        ]
    out.plain = getattr(msg, "body", None)
    try:
        html = getattr(msg, "htmlBody", None)
        out.html = _decode(html) if isinstance(html, bytes) else html
    except Exception as exc:  # the RTF de-encapsulation may fail
        problems.append(f"HTML body not readable: {exc}")
    if out.plain is None and out.html is None:
        out.rtf = getattr(msg, "rtfBody", None)
    for i, att in enumerate(getattr(msg, "attachments", [])):
        name = getattr(att, "longFilename", None) or getattr(att, "shortFilename", None)
        name = name or f"attachment-{i + 1}"
        try:
            data = att.data
            if isinstance(data, MessageBase):
                out.attachments.append(
                    Attachment(name, b"", embedded=build_message(_msg_message(data, problems)))
                )
            elif isinstance(data, bytes):
                mime = getattr(att, "mimetype", None) or "application/octet-stream"
                out.attachments.append(Attachment(name, data, mime, getattr(att, "cid", None)))
            else:
                problems.append(f"attachment {name!r} has no data")
        except Exception as exc:
            problems.append(f"attachment {name!r} not readable: {exc}")
    return out


def read_msg(path: Path, *, ref: str, folder_path: str) -> Iterator[ImportEvent]:
    """Yield the one message of an Outlook .msg file."""
    import extract_msg

    logging.getLogger("extract_msg").setLevel(logging.ERROR)
    try:
        msg = extract_msg.openMsg(str(path), strict=False)
    except Exception as exc:  # olefile/extract-msg raise many kinds
        yield ImportProblem(ref, f"cannot open MSG file: {exc}")
        return
    try:
        problems: list[str] = []
        raw = build_message(_msg_message(msg, problems))
    except Exception as exc:
        yield ImportProblem(ref, f"cannot convert MSG file: {exc}")
        return
    finally:
        msg.close()
    yield ImportItem(folder_path, raw, ref, "; ".join(problems) or None)
