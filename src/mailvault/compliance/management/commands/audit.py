"""``mailvault audit validate|export``: the audit log from the console (operators).

``validate --tenant NAME`` (or ``--operator``) walks a chain and exits non-zero when it
is broken; ``export --tenant NAME --day YYYY-MM-DD`` writes that UTC day's CSV.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.compliance import audit
from mailvault.compliance.audit import search
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant


def _tenant(name: str) -> Tenant:
    tenant = Tenant.objects.filter(name=name).first()
    if tenant is None:
        raise CommandError(f"no tenant named {name!r}")
    return tenant


class Command(BaseCommand):
    help = "Validate a tenant's (or the operator's) audit chain, or export a day as CSV."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("validate", help="recompute every hash of a chain")
        which = check.add_mutually_exclusive_group(required=True)
        which.add_argument("--tenant", help="tenant name")
        which.add_argument("--operator", action="store_true", help="the operator chain")
        export = sub.add_parser("export", help="one UTC day of a tenant's log as CSV")
        export.add_argument("--tenant", required=True, help="tenant name")
        export.add_argument("--day", required=True, type=date.fromisoformat, help="YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            with tenant_context(_tenant(options["tenant"])):
                for line in search.csv_lines(options["day"]):
                    self.stdout.write(line, ending="")
            return
        tenant = None if options["operator"] else _tenant(options["tenant"])
        result = audit.validate(tenant)
        name = "operator" if tenant is None else tenant.name
        if not result.intact:
            raise CommandError(
                f"audit chain of {name} is broken at entry #{result.broken_seq}: "
                f"{result.problem} ({result.checked} entries before it are intact)"
            )
        self.stdout.write(
            self.style.SUCCESS(f"audit chain of {name} intact: {result.checked} entries")
        )
