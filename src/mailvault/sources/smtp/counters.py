"""Per-endpoint counters of the SMTP listener, persisted on :class:`JournalEndpoint`.

The listener answers SMTP commands without waiting for the database, so it counts in
memory and a thread adds the counts to the rows about once a second (and once more at
shutdown) with ``UPDATE … SET accepted = accepted + n``: atomic in the database, so any
number of listener processes can count into the same rows. A flush that fails (the
database restarting) keeps its counts for the next one. What a SIGKILL interrupts is at
most the last second's counts: they are statistics, the messages themselves are in the
spool.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import close_old_connections, transaction
from django.db.models import Case, F, Q, Value, When

from mailvault.sources.models import JournalEndpoint

log = logging.getLogger("mailvault.smtp")


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0
    last_received: float = 0.0  # epoch seconds of the newest accepted message

    def merge(self, other: Tally) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.deferred += other.deferred
        self.last_received = max(self.last_received, other.last_received)


class EndpointCounters:
    """Thread-safe in-memory increments, flushed to the database by :meth:`flush`."""

    def __init__(self, flush_seconds: float = 1.0) -> None:
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: dict[int, Tally] = defaultdict(Tally)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- counting (any thread, never blocks on the database) ------------------------

    def accepted(self, endpoint_id: int, received: float) -> None:
        with self._lock:
            tally = self._pending[endpoint_id]
            tally.accepted += 1
            tally.last_received = max(tally.last_received, received)

    def rejected(self, endpoint_id: int) -> None:
        with self._lock:
            self._pending[endpoint_id].rejected += 1

    def deferred(self, endpoint_id: int) -> None:
        with self._lock:
            self._pending[endpoint_id].deferred += 1

    def pending(self) -> dict[int, Tally]:
        """A copy of what is not yet in the database."""
        with self._lock:
            return {k: Tally(**vars(v)) for k, v in self._pending.items()}

    # --- persisting ----------------------------------------------------------------

    def flush(self) -> int:
        """Add the counts to the database in one transaction; returns rows updated.
        On failure the counts go back into the buffer (nothing counted twice: the
        transaction rolled back)."""
        with self._lock:
            taken, self._pending = self._pending, defaultdict(Tally)
        if not taken:
            return 0
        try:
            updated = 0
            with transaction.atomic():
                for endpoint_id, tally in taken.items():
                    changes: dict[str, object] = {
                        "accepted": F("accepted") + tally.accepted,
                        "rejected": F("rejected") + tally.rejected,
                        "deferred": F("deferred") + tally.deferred,
                    }
                    if tally.last_received:
                        at = datetime.fromtimestamp(tally.last_received, UTC)
                        # Another process may have flushed a newer time: keep the newest.
                        changes["last_received_at"] = Case(
                            When(
                                Q(last_received_at__isnull=True) | Q(last_received_at__lt=at),
                                then=Value(at),
                            ),
                            default=F("last_received_at"),
                        )
                    # A deleted endpoint matches no row: its counts are dropped.
                    updated += JournalEndpoint.unscoped.filter(pk=endpoint_id).update(**changes)
            return updated
        except Exception:
            with self._lock:
                for endpoint_id, tally in taken.items():
                    self._pending[endpoint_id].merge(tally)
            raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="smtp-counters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            close_old_connections()
            self.flush()
        except Exception:
            log.exception("could not write the last SMTP counters")

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                close_old_connections()  # this thread's connection may have gone stale
                self.flush()
            except Exception:
                log.exception("could not write the SMTP counters; kept for the next try")
