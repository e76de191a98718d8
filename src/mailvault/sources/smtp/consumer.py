"""From the spool into the archive: unwrap journal reports and file what they carry.

Filing rules (features.md "Archiving"): every message received on an endpoint is filed
into the endpoint's journal mailbox; the original(s) carried by a journal report are
also filed into the archive mailbox of every sender and recipient address of the
tenant (primary or secondary, Bcc included); a plain copy is filed by the original
recipients its envelope names. Addresses of other tenants are simply not found: the
lookup runs inside the endpoint's tenant.

Nothing that got a ``250`` is lost: a report that cannot be unwrapped, or whose
originals cannot be ingested, is archived as received into the journal mailbox and
written to the process log (:mod:`.processlog`); one that cannot be archived even so is
kept in ``<spool>/failed/``. A database error is different: it is not the message's
fault, so the segment stays and is tried again (ingestion deduplicates).

Several consumers may share one spool: each segment is claimed with an exclusive
``flock`` (released by the kernel when a consumer dies), and deleted only once ingested.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import InterfaceError, OperationalError, close_old_connections

from mailvault.archive.models import Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.jobs.models import Severity
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.smtp.journal import unwrap
from mailvault.sources.smtp.processlog import Problem, record_problems
from mailvault.sources.smtp.rawmime import split_headers
from mailvault.sources.smtp.spool import Spool, SpoolRecord, read_segment
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

log = logging.getLogger("mailvault.smtp")
# The database is unreachable, locked or restarting: not the message's fault, so the
# segment is tried again. (An IntegrityError or DataError is about the message.)
TRANSIENT = (OperationalError, InterfaceError)


@dataclass
class Plan:
    """What one spooled message becomes, and what was wrong with it."""

    record: SpoolRecord
    requests: list[IngestRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def describe(record: SpoolRecord) -> str:
    """How the process log names a message: sender, time, Message-ID, subject."""
    meta = record.meta
    try:
        headers = split_headers(record.body[:65536]).headers
        message_id = str(headers.get("Message-ID", "") or "").strip()
        subject = str(headers.get("Subject", "") or "").strip()[:120]
    except Exception:
        message_id = subject = ""
    received = meta.get("received")
    when = (
        datetime.fromtimestamp(float(received), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(received, int | float)
        else "?"
    )
    parts = [f"Message from <{meta.get('mail_from') or ''}> received {when}"]
    if message_id:
        parts.append(f"Message-ID {message_id}")
    if subject:
        parts.append(f"subject “{subject}”")
    return ", ".join(parts)


def _originals(record: SpoolRecord) -> list[str]:
    listed = record.meta.get("original_recipients")
    return [str(a) for a in listed] if isinstance(listed, list) else []


def as_received(record: SpoolRecord, endpoint: JournalEndpoint) -> IngestRequest:
    """The message exactly as it came over SMTP, into the journal mailbox only."""
    return IngestRequest(
        raw=record.body,
        source=Message.Source.SMTP,
        targets=[Target(endpoint.mailbox)],
        envelope_from=str(record.meta.get("mail_from") or ""),
        envelope_recipients=_originals(record),
        source_ref=f"smtp:{endpoint.local_part}",
    )


def plan(record: SpoolRecord, endpoint: JournalEndpoint) -> Plan:
    result = Plan(record)
    mail_from = str(record.meta.get("mail_from") or "")
    originals = _originals(record)
    try:
        unwrapped = unwrap(record.body)
    except Exception as exc:  # a report so broken the unwrapper gives up
        result.problems.append(
            Problem(
                Severity.ERROR,
                f"{describe(record)}: could not be unwrapped ({type(exc).__name__}: {exc}); "
                "archived as received into the journal mailbox.",
            )
        )
        result.requests.append(as_received(record, endpoint))
        return result
    for raw, envelope in unwrapped.originals:
        if envelope is not None:
            file_by = envelope.all_addresses
            recipients = envelope.all_recipients
            sender = envelope.sender or mail_from
        else:
            file_by = list(originals)
            recipients = list(originals)
            sender = mail_from
        result.requests.append(
            IngestRequest(
                raw=raw,
                source=Message.Source.SMTP,
                targets=[Target(endpoint.mailbox)],
                file_by_addresses=file_by,
                envelope_from=sender,
                envelope_recipients=recipients,
                source_ref=f"smtp:{endpoint.local_part}",
            )
        )
    for problem in unwrapped.problems:
        result.problems.append(Problem(Severity.WARNING, f"{describe(record)}: {problem}."))
    return result


def requests_for(record: SpoolRecord, endpoint: JournalEndpoint) -> list[IngestRequest]:
    return plan(record, endpoint).requests


def _ingest(requests: list[IngestRequest], batch_size: int = 200) -> None:
    with Ingestor(batch_size=batch_size) as ingestor:
        for request in requests:
            ingestor.add(request)


def _quarantine(path: Path, index: int, record: SpoolRecord) -> Path:
    """Keep a message nothing could archive next to the spool, as an .eml file."""
    failed = path.parent.parent / "failed"
    failed.mkdir(parents=True, exist_ok=True)
    target = failed / f"{path.stem}-{index:06d}.eml"
    with target.open("wb") as handle:
        handle.write(record.body)
        handle.flush()
        os.fsync(handle.fileno())
    return target


def ingest_endpoint_records(
    endpoint: JournalEndpoint, records: list[tuple[int, SpoolRecord]], segment: Path
) -> list[Problem]:
    """Archive one endpoint's records (in its tenant); returns the problems to log."""
    plans = [(index, plan(record, endpoint)) for index, record in records]
    problems = [p for _, one in plans for p in one.problems]
    try:
        _ingest([request for _, one in plans for request in one.requests])
        return problems
    except TRANSIENT:
        raise
    except Exception:
        log.exception(
            "a batch of endpoint %s failed; archiving its messages one by one", endpoint.pk
        )
    for index, one in plans:
        try:
            _ingest(one.requests, batch_size=50)
            continue
        except TRANSIENT:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        try:
            _ingest([as_received(one.record, endpoint)], batch_size=1)
            problems.append(
                Problem(
                    Severity.ERROR,
                    f"{describe(one.record)}: could not be archived ({error}); archived as "
                    "received into the journal mailbox instead.",
                )
            )
        except TRANSIENT:
            raise
        except Exception as exc2:
            kept = _quarantine(segment, index, one.record)
            problems.append(
                Problem(
                    Severity.ERROR,
                    f"{describe(one.record)}: could not be archived ({error}; as received: "
                    f"{type(exc2).__name__}: {exc2}); kept in {kept}.",
                )
            )
    return problems


def ingest_segment(path: Path) -> int:
    """Ingest every whole record of a segment; returns how many records."""
    by_endpoint: dict[int, list[tuple[int, SpoolRecord]]] = defaultdict(list)
    count = 0
    for record in read_segment(path):
        by_endpoint[int(record.meta["endpoint"])].append((count, record))  # type: ignore[call-overload]
        count += 1
    for endpoint_id, records in by_endpoint.items():
        endpoint = (
            JournalEndpoint.unscoped.select_related("mailbox", "tenant")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None:
            # Deleted after it accepted mail: keep the mail, in the tenant's archive.
            tenant = Tenant.objects.filter(pk=int(records[0][1].meta["tenant"])).first()  # type: ignore[call-overload]
            log.error("endpoint %s vanished; %d messages kept unfiled", endpoint_id, len(records))
            if tenant is None:
                for index, record in records:
                    _quarantine(path, index, record)
                continue
            with tenant_context(tenant):
                _ingest([IngestRequest(raw=r.body, source=Message.Source.SMTP) for _, r in records])
            continue
        with tenant_context(endpoint.tenant):
            problems = ingest_endpoint_records(endpoint, records, path)
        record_problems(endpoint, problems)
    return count


class SpoolConsumer:
    """A thread that ingests ready segments in order and deletes them afterwards."""

    def __init__(self, spool: Spool, poll_seconds: float = 0.2) -> None:
        self.spool = spool
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)

    def drain(self, *, interruptible: bool = False) -> int:
        """Ingest what is ready now (also used by tests); returns records ingested.
        ``interruptible``: stop after the current segment once :meth:`stop` was called
        (the rest stays in the spool for the next start: shutdown does not wait for a
        backlog)."""
        done = 0
        for path in self.spool.ready_segments():
            if interruptible and self._stop.is_set():
                break
            try:
                handle = path.open("rb")
            except FileNotFoundError:  # another consumer finished it
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # another consumer is on it
                    continue
                if os.fstat(handle.fileno()).st_nlink == 0:  # done while we waited
                    continue
                done += ingest_segment(path)
                path.unlink()
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                close_old_connections()  # this thread's connection may have gone stale
                if not self.drain(interruptible=True):
                    self._stop.wait(self.poll_seconds)
            except Exception:
                # The segment stays; it is tried again (ingestion deduplicates).
                log.exception("could not ingest a spool segment; retrying")
                self._stop.wait(5.0)
