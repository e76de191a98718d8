"""``mailvault reindex --tenant T [--reconcile]``: rebuild the search index from the store."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.ingestion.reconcile import rebuild_index, reconcile_index
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Rebuild (or, with --reconcile, complete) a tenant's search index from its store."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--reconcile", action="store_true", help="only add what is missing, drop what is gone"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant named {options['tenant']!r}.")
        with tenant_context(tenant):
            if options["reconcile"]:
                report = reconcile_index()
                self.stdout.write(f"indexed {report.indexed}, removed {report.removed}")
            else:
                count = rebuild_index()
                self.stdout.write(f"reindexed {count} messages")
