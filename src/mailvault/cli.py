"""The ``mailvault`` console command: Django's management commands with our settings.

``mailvault tenant create NAME``, ``mailvault run``, ``mailvault migrate`` …
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailvault.settings")
    from django.core.management import execute_from_command_line

    from mailvault.compliance.audit.cli import audited

    args = list(sys.argv[1:] if argv is None else argv)
    with audited(args):  # commands that change data go into the audit log
        execute_from_command_line(["mailvault", *args])


if __name__ == "__main__":
    main()
