"""Exchange Online journaling: journal rules (the Purview "Journal rules" page) and the
transport that, for every message sent inside the emulated tenant, delivers it to the
recipients' mailboxes and sends one envelope journal report per distinct journal
destination over SMTP (m365-protocol.md §5, MS-XJRNL §2.1).

Variants a test can ask for: ``decrypted`` (journal report decryption: the original twice),
``ndr`` (the destination "rejected" the report: an NDR carrying it goes to the alternate
journaling mailbox), ``duplicate`` (the report is sent twice, as hybrid setups do).
"""

from __future__ import annotations

import datetime
import email.base64mime
import email.utils
import smtplib
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from m365_emulator import mime
from m365_emulator.model import Group, User
from m365_emulator.state import Tenant

SCOPES = {
    "global": "All messages",
    "internal": "Internal messages only",
    "external": "External messages only",
}
VARIANTS = ("standard", "decrypted", "ndr", "duplicate")


@dataclass
class JournalRule:
    name: str
    journal_address: str
    scope: str = "global"
    recipient: str = ""  # "" = everyone; else a user or group address
    enabled: bool = True
    smarthost: str = ""  # "host:port"; "" = the emulator's journal smarthost
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Delivery:
    rule: str
    recipient: str
    smarthost: str
    variant: str
    ok: bool
    error: str = ""
    raw: bytes = b""
    at: str = field(default_factory=lambda: mime.iso(datetime.datetime.now(datetime.UTC)))


@dataclass
class SentMessage:
    message_id: str
    raw: bytes
    delivered_to: list[str]
    reports: list[Delivery]


def _split(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host or "127.0.0.1", int(port or 25)


class JournalService:
    def __init__(self, tenant: Tenant, smarthost: str, ndr_to: str = "") -> None:
        self.tenant = tenant
        self.smarthost = smarthost
        self.ndr_to = ndr_to  # the alternate journaling mailbox (JournalingReportNdrTo)
        self.rules: list[JournalRule] = []
        self.log: list[Delivery] = []
        self.queue: list[tuple[JournalRule, bytes, str, str]] = []
        self.lock = threading.Lock()

    # --- rules -------------------------------------------------------------------------
    def export(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rules]

    def load(self, items: list[dict[str, Any]]) -> None:
        self.rules = [JournalRule(**item) for item in items]

    def add_rule(self, **values: Any) -> JournalRule:
        if values.get("scope", "global") not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        address = str(values.get("journal_address", ""))
        if "@" not in address:
            raise ValueError("journal_address must be an e-mail address")
        if self.tenant.find_by_address(address) is not None:
            raise ValueError("The journal destination can't be an Exchange Online mailbox.")
        rule = JournalRule(**values)
        with self.lock:
            self.rules.append(rule)
        return rule

    def delete_rule(self, rule_id: str) -> bool:
        with self.lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rule_id]
            return len(self.rules) != before

    # --- sending -----------------------------------------------------------------------
    def _internal(self, address: str) -> bool:
        return self.tenant.knows_domain(address.rpartition("@")[2])

    def _expand(self, address: str) -> tuple[list[str], bool]:
        """Mail-enabled group -> its members' addresses (transitively), else the address."""
        found = self.tenant.find_by_address(address)
        if isinstance(found, Group):
            members = [
                self.tenant.users[m]
                for m in self.tenant.transitive_members(found.id)
                if m in self.tenant.users
            ]
            return [u.mail for u in members if u.mail], True
        return [address], False

    def send(
        self,
        sender: str,
        to: list[str],
        cc: list[str] | None = None,
        bcc: list[str] | None = None,
        subject: str = "",
        body: str = "",
        variant: str = "standard",
    ) -> SentMessage:
        """Send a message inside the tenant, as a user in Outlook would."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
        cc, bcc = cc or [], bcc or []
        author = self.tenant.find_by_address(sender)
        name = author.display_name if isinstance(author, User) else ""
        raw = mime.compose((name, sender), to, cc, subject, body, self.tenant.default_domain)
        parsed = mime.parse(raw, datetime.datetime.now(datetime.UTC))
        lines = [
            f"Sender: {sender}",
            f"Subject: {subject}",
            f"Message-ID: {parsed.internet_message_id}",
        ]
        everyone: list[str] = []
        for kind, addresses in (("To", to), ("Cc", cc), ("Bcc", bcc)):
            for address in addresses:
                expanded, is_group = self._expand(address)
                for member in expanded:
                    lines.append(
                        f"{kind}: {member}, Expanded: {address}"
                        if is_group
                        else f"{kind}: {member}"
                    )
                    everyone.append(member)
        delivered = self._deliver_to_mailboxes(sender, everyone, raw)
        reports: list[Delivery] = []
        destinations: dict[str, JournalRule] = {}
        for rule in self.rules:
            if rule.enabled and self._matches(rule, sender, everyone, [*to, *cc, *bcc]):
                destinations.setdefault(rule.journal_address.lower(), rule)
        envelope = "\r\n".join(lines) + "\r\n"
        for rule in destinations.values():
            report = self.journal_report(
                rule.journal_address, subject, envelope, raw, decrypted=variant == "decrypted"
            )
            if variant == "ndr":
                target = self.ndr_to or rule.journal_address
                reports.append(
                    self._smtp(
                        rule, self.ndr(target, rule.journal_address, report), target, variant
                    )
                )
                continue
            reports.append(self._smtp(rule, report, rule.journal_address, variant))
            if variant == "duplicate":
                reports.append(self._smtp(rule, report, rule.journal_address, variant))
        return SentMessage(parsed.internet_message_id, raw, delivered, reports)

    def _matches(
        self, rule: JournalRule, sender: str, recipients: list[str], named: list[str]
    ) -> bool:
        parties = [sender, *recipients]
        inside = [self._internal(a) for a in parties]
        if rule.scope == "internal" and not all(inside):
            return False
        if rule.scope == "external" and all(inside):
            return False
        if not rule.recipient:
            return True
        wanted = rule.recipient.lower()
        group_members, is_group = self._expand(rule.recipient)
        pool = {a.lower() for a in [*parties, *named]}
        return wanted in pool or (is_group and bool(pool & {m.lower() for m in group_members}))

    def _deliver_to_mailboxes(self, sender: str, recipients: list[str], raw: bytes) -> list[str]:
        delivered = []
        tenant = self.tenant
        with tenant.lock:
            author = tenant.find_by_address(sender)
            if isinstance(author, User):
                box = tenant.mailbox(author.id)
                if box is not None:
                    tenant.deliver(
                        box,
                        box.folders[box.well_known["sentitems"]],
                        raw,
                        key=("sent", uuid.uuid4()),
                        is_read=True,
                    )
                    delivered.append(f"{sender} (Sent Items)")
            for address in dict.fromkeys(a.lower() for a in recipients):
                user = tenant.find_by_address(address)
                if isinstance(user, User):
                    box = tenant.mailbox(user.id)
                    if box is not None:
                        tenant.deliver(
                            box,
                            box.folders[box.well_known["inbox"]],
                            raw,
                            key=("rcpt", uuid.uuid4()),
                        )
                        delivered.append(address)
        return delivered

    def _sender_address(self) -> str:
        return f"MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{self.tenant.initial_domain}"

    def journal_report(
        self, to: str, subject: str, envelope: str, original: bytes, *, decrypted: bool = False
    ) -> bytes:
        boundary = f"_journal_{uuid.uuid4().hex}_"
        head = (
            f"From: Microsoft Outlook <{self._sender_address()}>\r\nTo: {to}\r\nSubject: "
            f"{subject}\r\n"
            f"Date: {email.utils.format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{self.tenant.initial_domain}>\r\n"
            "X-MS-Journal-Report: \r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        )
        parts = [
            f'--{boundary}\r\nContent-Type: text/plain; charset="us-ascii"\r\n'
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{envelope}\r\n".encode()
        ]
        if decrypted:
            parts.append(
                f"--{boundary}\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; "
                f'name="smime.p7m"\r\nContent-Disposition: attachment; filename="smime.p7m"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n".encode()
                + email.base64mime.body_encode(
                    b"\x30\x80emulated-encrypted:" + original[:256]
                ).encode()
                + b"\r\n"
            )
        parts.append(
            f"--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: "
            f"binary\r\n\r\n".encode()
            + original
            + b"\r\n"
        )
        return head.encode() + b"".join(parts) + f"--{boundary}--\r\n".encode()

    def ndr(self, to: str, failed_rcpt: str, report: bytes) -> bytes:
        boundary = f"_ndr_{uuid.uuid4().hex}_"
        head = (
            f"From: Microsoft Outlook <postmaster@{self.tenant.initial_domain}>\r\nTo: {to}\r\n"
            "Subject: Undeliverable: journal report\r\n"
            f"Date: {email.utils.format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{self.tenant.initial_domain}>\r\n"
            "X-MS-Exchange-Message-Is-Ndr: \r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; "
            f'boundary="{boundary}"\r\n\r\n'
        )
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"Delivery has failed to these recipients or groups:\r\n\r\n{failed_rcpt}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; {self.tenant.initial_domain}\r\n\r\nFinal-Recipient: rfc822; "
            f"{failed_rcpt}\r\n"
            f"Action: failed\r\nStatus: 5.0.0\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        return head.encode() + body + report + f"\r\n--{boundary}--\r\n".encode()

    def _smtp(self, rule: JournalRule, data: bytes, rcpt: str, variant: str) -> Delivery:
        target = rule.smarthost or self.smarthost
        delivery = Delivery(rule.id, rcpt, target, variant, ok=False, raw=data)
        try:
            host, port = _split(target)
            with smtplib.SMTP(host, port, timeout=15) as client:
                client.sendmail(self._sender_address(), [rcpt], data)
            delivery.ok = True
        except (OSError, smtplib.SMTPException) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.queue.append((rule, data, rcpt, variant))
        with self.lock:
            self.log.append(delivery)
            del self.log[:-200]
        return delivery

    def flush(self) -> list[Delivery]:
        """Retry queued reports (Exchange retries them for about two days)."""
        with self.lock:
            pending, self.queue = self.queue, []
        return [self._smtp(rule, data, rcpt, variant) for rule, data, rcpt, variant in pending]
