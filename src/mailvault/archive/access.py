"""Which messages a Web Access user may read: the one place that decides it.

Compliance reads every message of the tenant (filed or not); a Reader reads messages
filed in a mailbox it may read (see :func:`readable_mailboxes`).
"""

from __future__ import annotations

from django.db.models import QuerySet

from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Folder, Mailbox, Message
from mailvault.archive.services import readable_mailboxes


def readable_messages(user: User) -> QuerySet[Message]:
    if user.has_role(Role.COMPLIANCE):
        return Message.objects.all()
    return Message.objects.filter(placements__mailbox__in=readable_mailboxes(user)).distinct()


def readable_mailbox_ids(user: User) -> list[int]:
    return list(readable_mailboxes(user).values_list("pk", flat=True))


def folder_tree(mailbox: Mailbox) -> list[tuple[Folder, int]]:
    """The mailbox's folders in path order with their depth, root excluded."""
    folders = Folder.objects.filter(mailbox=mailbox).exclude(path="").order_by("path")
    return [(folder, folder.path.count("/")) for folder in folders]
