"""``mailvault run``: set up the embedded default and run everything in the foreground."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mailvault.ingestion.reconcile import upgrade_indexes
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
            upgrade_indexes(self.stdout.write)
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
        services = [web, worker, scheduler, smtpd]
        if settings.MAILVAULT_M365_EMULATOR:
            services.append(self._m365_emulator())  # sets the env before any child starts
        raise SystemExit(Supervisor(services).run())

    def _m365_emulator(self) -> Service:
        """The Microsoft 365 emulator; its journal reports go to our SMTP listener. Unless
        MAILVAULT_M365_* point elsewhere, the other services (which inherit this
        environment) talk to it: its authority, app credentials and CA."""
        from m365_emulator.cli import connection_env

        port = settings.MAILVAULT_M365_EMULATOR_PORT
        for name, value in connection_env(settings.VAR_DIR / "m365-emulator", port).items():
            os.environ.setdefault(name, value)
        self.stdout.write(
            f"Microsoft 365 emulator: https://localhost:{port}/_emulator/admin "
            f"(CA: {settings.VAR_DIR / 'm365-emulator' / 'tls' / 'ca.pem'})"
        )
        return Service(
            "m365-emulator",
            python_module(
                "m365_emulator",
                "--port",
                str(port),
                "--state-dir",
                str(settings.VAR_DIR / "m365-emulator"),
                "--journal-smarthost",
                f"{settings.MAILVAULT_SMTP_HOST}:{settings.MAILVAULT_SMTP_PORT}",
            ),
        )

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
