"""``mailvault worker``: run queued jobs (the django-tasks database worker, made sturdy).

By default the command supervises one worker *child process* and restarts it when it
ends abnormally: a job that ignores its timeout makes the child exit (see
:mod:`mailvault.jobs.runner`), and so may a database outage longer than the child's own
retries. ``--in-process`` runs the worker loop directly (what the child does).

Start any number of workers against PostgreSQL: tasks are claimed with
``SELECT … FOR UPDATE SKIP LOCKED``, so each job runs once. On SQLite run one worker.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, connections
from django_tasks.utils import get_random_id
from django_tasks_db.management.commands.db_worker import Worker

from mailvault.jobs.runner import reap_lost_runs, worker_mode
from mailvault.supervisor import die_with_parent

logger = logging.getLogger("mailvault.jobs")

MAX_BACKOFF = 30.0


class RecoveringWorker(Worker):
    """The db_worker loop that survives the database being briefly unavailable."""

    def run(self) -> None:
        backoff = 1.0
        while self.running:
            try:
                reap_lost_runs()
                super().run()
                return
            except (OperationalError, InterfaceError) as exc:
                logger.warning(
                    "worker %s: database unavailable (%s); retrying in %.0f s",
                    self.worker_id,
                    exc,
                    backoff,
                )
                for conn in connections.all(initialized_only=True):
                    conn.close_if_unusable_or_obsolete()
                    conn.close()
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)


class Command(BaseCommand):
    help = "Run queued jobs (schedules, run now). Any number of workers on PostgreSQL."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between polls of an empty queue"
        )
        parser.add_argument("--worker-id", default="", help="unique id (default: random)")
        parser.add_argument("--max-tasks", type=int, default=None)
        parser.add_argument("--batch", action="store_true", help="run what is queued, then exit")
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="run the worker loop here instead of in a supervised child",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["in_process"]:
            self._run_worker(options)
        else:
            raise SystemExit(self._supervise(options))

    def _run_worker(self, options: dict[str, Any]) -> None:
        if not logging.getLogger("django_tasks_db").handlers:
            logging.getLogger("django_tasks_db").addHandler(logging.StreamHandler(sys.stderr))
            logging.getLogger("django_tasks_db").setLevel(logging.INFO)
        worker_mode.active = True
        worker_mode.hard_exit = True
        worker = RecoveringWorker(
            queue_names=["default"],
            interval=options["interval"],
            batch=options["batch"],
            backend_name="default",
            startup_delay=not options["batch"],
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"] or get_random_id(),
        )
        worker.configure_signals()
        worker.run()

    def _supervise(self, options: dict[str, Any]) -> int:
        # Re-run the same entry point (the ``mailvault`` script, ``-m mailvault``'s
        # __main__.py, or a wrapper that registers extra process types).
        entry = ["-m", "mailvault"] if Path(sys.argv[0]).name == "__main__.py" else [sys.argv[0]]
        argv = [
            sys.executable,
            *entry,
            "worker",
            "--in-process",
            "--interval",
            str(options["interval"]),
        ]
        if options["worker_id"]:
            argv += ["--worker-id", options["worker_id"]]
        if options["batch"]:
            argv.append("--batch")
        if options["max_tasks"] is not None:
            argv += ["--max-tasks", str(options["max_tasks"])]
        stopping = False
        child: subprocess.Popen[bytes] | None = None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            if child is not None and child.poll() is None:
                child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        backoff = 1.0
        while True:
            started = time.monotonic()
            child = subprocess.Popen(argv, preexec_fn=die_with_parent)  # noqa: S603
            code = child.wait()
            if stopping or code == 0:
                return code
            if time.monotonic() - started > 60:
                backoff = 1.0
            self.stderr.write(f"worker process exited with {code}; restarting in {backoff:.0f} s")
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
