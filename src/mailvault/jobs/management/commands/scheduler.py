"""``mailvault scheduler``: queue due schedules every few seconds and reap lost runs.

Several schedulers may run (due schedules are locked with SKIP LOCKED), but one is enough.
"""

from __future__ import annotations

import logging
import signal
import time
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone

from mailvault.jobs.services import tick

logger = logging.getLogger("mailvault.jobs")


class Command(BaseCommand):
    help = "Queue due schedules (and fail runs whose worker was lost)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--interval", type=float, default=5.0)
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        running = True

        def stop(_signum: int, _frame: FrameType | None) -> None:
            nonlocal running
            running = False

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        backoff = options["interval"]
        while running:
            try:
                result = tick(timezone.now())
                if result.queued or result.skipped or result.reaped:
                    logger.info(
                        "scheduler: queued %d, skipped %d, reaped %d",
                        len(result.queued),
                        len(result.skipped),
                        result.reaped,
                    )
                backoff = options["interval"]
            except (OperationalError, InterfaceError) as exc:
                logger.warning("scheduler: database unavailable (%s); retrying", exc)
                for conn in connections.all(initialized_only=True):
                    conn.close()
                backoff = min(backoff * 2, 60.0)
            if options["once"]:
                return
            close_old_connections()
            deadline = time.monotonic() + backoff
            while running and time.monotonic() < deadline:
                time.sleep(0.2)
