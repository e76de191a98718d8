"""``mailvault recover --tenant NAME``: rebuild lost message records from the packs."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.archive.store import StoreError
from mailvault.compliance.integrity import recover
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Re-read a tenant's pack files and rebuild every message record the database "
        "lacks (filed under Recovered), then index them. Safe to run again."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant name")
        parser.add_argument(
            "--no-reindex",
            action="store_true",
            help="leave recovered messages unindexed (a later reconciliation indexes them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["tenant"]
        tenant = Tenant.objects.filter(name=name).first()
        if tenant is None:
            raise CommandError(f"no tenant named {name!r}")
        try:
            with tenant_context(tenant):
                report = recover(reindex=not options["no_reindex"])
        except StoreError as exc:
            raise CommandError(f"the store of tenant {name} cannot be read: {exc}") from exc
        self.stdout.write(f"tenant: {name}")
        for line in report.summary():
            self.stdout.write(line)
        for problem in report.unreadable:
            self.stderr.write(f"  unreadable {problem}")
        if report.unreadable:
            raise CommandError(f"{len(report.unreadable)} message(s) could not be read")
        self.stdout.write(self.style.SUCCESS("recovery complete"))
