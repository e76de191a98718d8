"""``mailvault operator_api_key create NAME | list | revoke PREFIX``: the operator API's keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailvault.api import keys
from mailvault.api.models import OperatorApiKey


class Command(BaseCommand):
    help = "Create, list or revoke operator API keys (the key is printed once, at creation)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("name")
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "create":
                key, token = keys.create_operator_key(options["name"])
                self.stdout.write(
                    f"Operator API key {key.prefix} created. Store it now; it is not shown again:"
                )
                self.stdout.write(token)
            elif action == "revoke":
                key = keys.revoke_operator_key(options["prefix"])
                self.stdout.write(f"Operator API key {key.prefix} revoked.")
            else:
                for key in OperatorApiKey.objects.order_by("created_at"):
                    state = "revoked" if key.is_revoked else "active"
                    used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
                    self.stdout.write(f"{key.prefix}\t{state}\tlast used {used}\t{key.name}")
        except keys.ApiKeyError as exc:
            raise CommandError(str(exc)) from exc
