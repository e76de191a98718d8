"""``mailvault retention --tenant NAME [--dry-run]``: apply the retention policies now."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.compliance import deletion, retention
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Apply the tenant's retention policies (or list what would be deleted)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant name")
        parser.add_argument("--dry-run", action="store_true", help="only list what would go")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant named {options['tenant']!r}")
        with tenant_context(tenant):
            report = retention.run(dry_run=options["dry_run"])
            if options["dry_run"]:
                self.stdout.write(f"would delete {len(report.would_delete)} message(s):")
                for pk in report.would_delete:
                    self.stdout.write(f"  {pk}")
            else:
                self.stdout.write(f"deleted {len(report.deleted)} message(s)")
                self.stdout.write(f"compaction: {deletion.compact_store().summary()}")
        held = sum(1 for r in report.refused.values() if r == deletion.REASON_HOLD)
        self.stdout.write(f"kept under legal hold: {held}")
        self.stdout.write(f"kept by the minimum retention: {len(report.refused) - held}")
