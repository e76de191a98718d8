"""``mailvault smtpd``: the SMTP listener for journal endpoints, with its spool consumer."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from mailvault.sources.smtp.acceptors import AcceptorPool
from mailvault.sources.smtp.consumer import SpoolConsumer
from mailvault.sources.smtp.counters import EndpointCounters
from mailvault.sources.smtp.endpoints import EndpointDirectory
from mailvault.sources.smtp.fastdata import FastController
from mailvault.sources.smtp.listener import Authenticator, GroupCommitter, JournalHandler
from mailvault.sources.smtp.spool import Spool
from mailvault.sources.smtp.tls import server_context


class Command(BaseCommand):
    help = "Receive journal reports by SMTP and archive them."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default=settings.MAILVAULT_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.MAILVAULT_SMTP_PORT)
        parser.add_argument(
            "--no-consumer",
            action="store_true",
            help="only receive and spool; another process ingests",
        )
        parser.add_argument(
            "--no-listener",
            action="store_true",
            help="only ingest the spool (a consumer process beside --no-consumer listeners)",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.MAILVAULT_SMTP_PROCESSES,
            help="listener processes sharing the port (0: one per CPU)",
        )
        parser.add_argument("--acceptor", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        spool = Spool(Path(settings.MAILVAULT_SPOOL_DIR))
        if options["no_listener"]:
            self._consume_only(spool)
            return
        acceptor = options["acceptor"]  # one of the extra processes of acceptors.py
        # Every listener process hands on what dead ones left in active/ (a restarted
        # acceptor too); segments of live writers are locked and stay (Spool.recover).
        recovered = spool.recover()
        directory = EndpointDirectory()
        directory.start()
        committer = GroupCommitter(spool)
        committer.start()
        consumer = None if options["no_consumer"] or acceptor else SpoolConsumer(spool)
        if consumer:
            consumer.start()
        counters = EndpointCounters()
        counters.start()
        handler = JournalHandler(directory, committer, counters)
        controller = FastController(
            handler,
            hostname=options["host"],
            port=options["port"],
            server_hostname=settings.MAILVAULT_JOURNAL_DOMAIN,
            ident="Mailvault journaling",
            data_size_limit=settings.MAILVAULT_SMTP_MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=server_context(),
            require_starttls=False,
            authenticator=Authenticator(directory),
            auth_require_tls=True,
            auth_required=False,
            timeout=120,
        )
        controller.start()
        processes = options["processes"] or os.cpu_count() or 1
        acceptors = None
        if not acceptor and processes > 1:
            acceptors = AcceptorPool(processes - 1, options["host"], options["port"])
            acceptors.start()
        if not acceptor:
            self.stdout.write(
                f"SMTP listener on {options['host']}:{options['port']} for "
                f"*@{settings.MAILVAULT_JOURNAL_DOMAIN}, {processes} process"
                + ("es" if processes > 1 else "")
                + (f" ({recovered} spool segments recovered)" if recovered else ""),
            )
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            loop.run_until_complete(stop.wait())
        finally:
            if acceptors:
                acceptors.stop()
            controller.stop()
            committer.stop()
            counters.stop()
            directory.stop()
            if consumer:
                consumer.stop()
            loop.close()

    def _consume_only(self, spool: Spool) -> None:
        """Ingest segments as they become ready until SIGTERM/SIGINT. (Segments a dead
        listener left in ``active/`` are handed on when that listener restarts.)"""
        consumer = SpoolConsumer(spool)
        consumer.start()
        self.stdout.write(f"Ingesting the journaling spool {spool.root}")
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            loop.run_until_complete(stop.wait())
        finally:
            consumer.stop()
            loop.close()
