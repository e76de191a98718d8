"""``mailvault compliance_check --tenant NAME``: prove records, index and store agree."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.compliance import consistency, deletion
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Check that every message has its stored bytes, every index document a message, "
        "and no deletion is half done. --repair finishes pending purges and compacts the "
        "store first. Exits non-zero on any problem."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant name")
        parser.add_argument(
            "--repair", action="store_true", help="finish pending purges and compact first"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant named {options['tenant']!r}")
        with tenant_context(tenant):
            if options["repair"]:
                compacted = deletion.compact_store()
                self.stdout.write(f"compaction: {compacted.summary()}")
            report = consistency.check()
        self.stdout.write(f"tenant: {tenant.name}")
        for line in report.summary():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in tenant {tenant.name}")
        self.stdout.write(self.style.SUCCESS("consistent"))
