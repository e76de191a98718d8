"""The four roles. They are granted to groups only; a user holds the union of its groups'."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    AUDITOR = "auditor", "Auditor"
    COMPLIANCE = "compliance", "Compliance"
    READER = "reader", "Reader"


ROLE_DESCRIPTIONS: dict[str, str] = {
    Role.ADMIN: "Admin Access: configure the tenant. Does not allow reading mail.",
    Role.AUDITOR: "Admin Access: read and validate the audit log.",
    Role.COMPLIANCE: "Web Access to every mailbox of the tenant: search, export, delete.",
    Role.READER: "Web Access to the user's own mailboxes and those shared with its groups.",
}

# Which front door each role opens.
ADMIN_ACCESS_ROLES = frozenset({Role.ADMIN, Role.AUDITOR})
WEB_ACCESS_ROLES = frozenset({Role.READER, Role.COMPLIANCE})
