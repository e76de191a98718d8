"""``mailvault run``: set up the embedded default and run everything in the foreground."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mailvault.supervisor import Service, Supervisor, python_module
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import ProvisioningError, provision_tenant


class Command(BaseCommand):
    help = "Migrate, provision the demo tenant, and run Mailvault in the foreground."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--demo-tenant",
            default="democustomer",
            help="tenant to provision on first run ('' for none)",
        )
        parser.add_argument(
            "--no-setup",
            action="store_true",
            help="skip migrations, static files and the demo tenant",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port {options['port']} is not a TCP port")
        if not options["no_setup"]:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            if options["demo_tenant"]:
                self._ensure_demo_tenant(options["demo_tenant"])
        web = Service(
            "web",
            python_module(
                "uvicorn",
                "mailvault.asgi:application",
                "--host",
                options["host"],
                "--port",
                str(options["port"]),
                "--lifespan",
                "off",
                "--no-access-log",
            ),
        )
        self.stdout.write(
            f"Admin Access: http://{options['host']}:{options['port']}/adminaccess\n"
            f"Web Access:   http://{options['host']}:{options['port']}/webaccess\n"
            f"Journaling:   smtp://{settings.MAILVAULT_SMTP_HOST}:{settings.MAILVAULT_SMTP_PORT}\n"
            "Press Ctrl-C to stop."
        )
        worker = Service("worker", python_module("mailvault", "worker"))
        scheduler = Service("scheduler", python_module("mailvault", "scheduler"))
        smtpd = Service("smtpd", python_module("mailvault", "smtpd"))
        raise SystemExit(Supervisor([web, worker, scheduler, smtpd]).run())

    def _ensure_demo_tenant(self, name: str) -> None:
        if Tenant.objects.filter(name=name).exists():
            self.stdout.write(
                f"Tenant {name} exists; its admin password was printed when it was created. "
                f"Lost it? mailvault user reset-password admin@{name}"
            )
            return
        try:
            result = provision_tenant(name, "Demo Customer")
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Provisioned tenant {name}.\n"
                f"  username: {result.admin_username}\n"
                f"  password: {result.admin_password}   (shown once; change it at first login)"
            )
        )
