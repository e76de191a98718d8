"""``mailvault verify --tenant NAME``: re-read and re-hash a tenant's whole blob store."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.archive.store import StoreError, store_for
from mailvault.tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Re-read every record of a tenant's store, decrypt, decompress and re-hash it, "
        "rebuild every message and check its SHA-256. Exits non-zero on any mismatch."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant name")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["tenant"]
        tenant = Tenant.objects.filter(name=name).first()
        if tenant is None:
            raise CommandError(f"no tenant named {name!r}")
        try:
            with store_for(tenant) as store:
                report = store.verify()
        except StoreError as exc:
            raise CommandError(f"the store of tenant {name} cannot be verified: {exc}") from exc
        self.stdout.write(f"tenant: {name}")
        for line in report.summary():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{len(report.mismatches)} mismatch(es) in the store of {name}")
        self.stdout.write(self.style.SUCCESS("store verified: no mismatches"))
