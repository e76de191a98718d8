"""From the spool into the archive: unwrap journal reports and file what they carry.

Filing rules (features.md "Archiving"): every message received on an endpoint is filed
into the endpoint's journal mailbox; the original(s) carried by a journal report are
also filed into the archive mailbox of every sender and recipient address of the
tenant (primary or secondary, Bcc included); a plain copy is filed by the original
recipients its envelope names. Addresses of other tenants are simply not found: the
lookup runs inside the endpoint's tenant.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from mailvault.archive.models import Message
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.sources.models import JournalEndpoint
from mailvault.sources.smtp.journal import unwrap
from mailvault.sources.smtp.spool import Spool, SpoolRecord, read_segment
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant

log = logging.getLogger("mailvault.smtp")


def requests_for(record: SpoolRecord, endpoint: JournalEndpoint) -> list[IngestRequest]:
    meta = record.meta
    unwrapped = unwrap(record.body)
    mail_from = str(meta.get("mail_from") or "")
    listed = meta.get("original_recipients")
    originals = [str(a) for a in listed] if isinstance(listed, list) else []
    requests = []
    for raw, envelope in unwrapped.originals:
        if envelope is not None:
            file_by = envelope.all_addresses
            recipients = envelope.all_recipients
            sender = envelope.sender or mail_from
        else:
            file_by = list(originals)
            recipients = list(originals)
            sender = mail_from
        requests.append(
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
        log.warning("endpoint %s: %s", endpoint.pk, problem)
    return requests


def ingest_segment(path: Path) -> int:
    """Ingest every whole record of a segment; returns how many records."""
    by_endpoint: dict[int, list[SpoolRecord]] = defaultdict(list)
    count = 0
    for record in read_segment(path):
        by_endpoint[int(record.meta["endpoint"])].append(record)  # type: ignore[call-overload]
        count += 1
    for endpoint_id, records in by_endpoint.items():
        endpoint = (
            JournalEndpoint.unscoped.select_related("mailbox", "tenant")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None:
            # Deleted after it accepted mail: keep the mail, in the tenant's archive.
            tenant = Tenant.objects.filter(pk=int(records[0].meta["tenant"])).first()  # type: ignore[call-overload]
            log.error("endpoint %s vanished; %d messages kept unfiled", endpoint_id, len(records))
            if tenant is None:
                continue
            with tenant_context(tenant), Ingestor(batch_size=200) as ingestor:
                for record in records:
                    ingestor.add(IngestRequest(raw=record.body, source=Message.Source.SMTP))
            continue
        with tenant_context(endpoint.tenant):
            with Ingestor(batch_size=200) as ingestor:
                for record in records:
                    for request in requests_for(record, endpoint):
                        ingestor.add(request)
            with transaction.atomic():
                JournalEndpoint.objects.filter(pk=endpoint.pk).update(
                    accepted=F("accepted") + len(records), last_received_at=timezone.now()
                )
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

    def drain(self) -> int:
        """Ingest what is ready now (also used by tests)."""
        done = 0
        for path in self.spool.ready_segments():
            done += ingest_segment(path)
            path.unlink()
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                close_old_connections()  # this thread's connection may have gone stale
                if not self.drain():
                    self._stop.wait(self.poll_seconds)
            except Exception:
                # The segment stays; it is tried again (ingestion deduplicates).
                log.exception("could not ingest a spool segment; retrying")
                self._stop.wait(5.0)
        try:
            self.drain()
        except Exception:
            log.exception("could not ingest the last spool segments; they stay for next time")
