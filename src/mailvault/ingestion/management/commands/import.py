"""``mailvault import --tenant T --mailbox ADDRESS PATH...``"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mailvault.archive.models import MailboxAddress
from mailvault.ingestion.imports import ImportRefused, run_import
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Import EML, MSG, MBOX, maildir, PST/OST or ZIP files into an archive mailbox."
    # The system checks (0.6 s of every run) are for starting the site (`mailvault run`
    # runs them); an import's own refusals say what is wrong with its input.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--mailbox", required=True, help="an address of the mailbox")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant named {options['tenant']!r}.")
        with tenant_context(tenant):
            address = (
                MailboxAddress.objects.select_related("mailbox")
                .filter(address=options["mailbox"].strip().casefold())
                .first()
            )
            if address is None:
                raise CommandError(f"Tenant {tenant.name} has no mailbox {options['mailbox']!r}.")
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                disable=options["no_progress"],
            ) as bar:
                task = bar.add_task("import", total=None)

                def progress(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    report = run_import(
                        address.mailbox,
                        options["paths"],
                        allowed_roots=[],
                        progress=None if options["no_progress"] else progress,
                    )
                except ImportRefused as exc:
                    raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"archived {report.archived}, filed {report.filed}, "
            f"already there {report.duplicates}, skipped (imported before) {report.skipped}, "
            f"failed {report.failed}"
        )
        for problem in report.problems:
            self.stdout.write(f"  problem: {problem}")
        if report.failed:
            raise SystemExit(2)
