"""``mailvault tenant create|list|suspend|resume``."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import ProvisioningError, provision_tenant, set_status


class Command(BaseCommand):
    help = "Provision and manage tenants."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="provision a tenant with its first admin")
        create.add_argument("name", help="tenant name, also its default domain")
        create.add_argument("--display-name", default="")
        sub.add_parser("list", help="list tenants")
        for action in ("suspend", "resume"):
            p = sub.add_parser(action, help=f"{action} a tenant")
            p.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "create":
                result = provision_tenant(options["name"], options["display_name"])
                self.stdout.write(f"tenant:   {result.tenant.name} (id {result.tenant.pk})")
                self.stdout.write(f"username: {result.admin_username}")
                self.stdout.write(f"password: {result.admin_password}")
                self.stdout.write("The password is shown once; it must be changed at first login.")
            elif action == "list":
                for tenant in Tenant.objects.all():
                    self.stdout.write(f"{tenant.pk}\t{tenant.name}\t{tenant.status}")
            elif action == "suspend":
                set_status(options["name"], Tenant.Status.SUSPENDED)
                self.stdout.write(f"{options['name']} suspended")
            elif action == "resume":
                set_status(options["name"], Tenant.Status.ACTIVE)
                self.stdout.write(f"{options['name']} resumed")
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
