"""``mailvault user reset-password USERNAME``: an operator's way back in."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailvault.accounts import services
from mailvault.accounts.backends import find_user
from mailvault.tenancy.context import tenant_context


class Command(BaseCommand):
    help = "Operator actions on a tenant's users."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        reset = sub.add_parser("reset-password", help="set a random password, to change at login")
        reset.add_argument("username")
        mfa = sub.add_parser("reset-mfa", help="turn off a user's TOTP")
        mfa.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = find_user(options["username"])
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        with tenant_context(user.tenant):
            if options["action"] == "reset-password":
                password = services.reset_password(user)
                self.stdout.write(f"username: {user.username}\npassword: {password}")
            else:
                services.reset_mfa(user)
                self.stdout.write(f"MFA turned off for {user.username}")
