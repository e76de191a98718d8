"""Moving archived messages between folders of one mailbox, as a source mailbox did.

Folder synchronization mirrors where a message sits in the user's mailbox. A message
journaled before it was synchronized sits at the mailbox's root (it was filed by address);
once its real folder is known, that provisional placement gives way. Every function here
returns the ids of the messages whose folders changed, so their index documents can be
refreshed (``folder:`` searches).
"""

from __future__ import annotations

from django.db import transaction

from mailvault.archive.models import Folder, Mailbox, Message, Placement
from mailvault.archive.services import folder_for_path

JOURNAL_REF_PREFIX = "smtp:"


def filed_source_refs(mailbox: Mailbox, refs: list[str]) -> set[str]:
    """Which of ``refs`` (sources' own item ids) an earlier run already filed in
    ``mailbox``: a resumed import or sync skips those before reading them again."""
    return set(
        Placement.objects.filter(mailbox=mailbox, source_ref__in=refs).values_list(
            "source_ref", flat=True
        )
    )


@transaction.atomic
def place(mailbox: Mailbox, message: Message, path: str, source_ref: str) -> bool:
    """File ``message`` at ``path`` of ``mailbox`` as the source's ``source_ref``.

    A placement of the same source reference elsewhere in the mailbox is moved (the
    source moved the message); a journal placement at the root gives way. True when
    anything changed."""
    folder = folder_for_path(mailbox, path)
    changed = False
    here = Placement.objects.filter(folder=folder, message=message).first()
    for old in Placement.objects.filter(mailbox=mailbox, source_ref=source_ref).exclude(
        folder=folder
    ):
        if here is None:
            old.folder = folder
            old.save(update_fields=["folder"])
            here = old
        else:
            old.delete()
        changed = True
    if here is None:
        here = Placement.objects.create(
            message=message, mailbox=mailbox, folder=folder, source_ref=source_ref[:512]
        )
        changed = True
    elif here.source_ref != source_ref:
        here.source_ref = source_ref[:512]
        here.save(update_fields=["source_ref"])
    provisional = Placement.objects.filter(
        mailbox=mailbox,
        message=message,
        folder__path="",
        source_ref__startswith=JOURNAL_REF_PREFIX,
    ).exclude(pk=here.pk)
    if provisional.exists():
        provisional.delete()
        changed = True
    return changed


@transaction.atomic
def rename_folder(mailbox: Mailbox, old_path: str, new_path: str) -> set[int]:
    """Give a folder (and everything under it) a new path, merging into a folder that
    exists there already. Returns the ids of the messages that moved."""
    old_path, new_path = old_path.strip("/"), new_path.strip("/")
    if not old_path or old_path == new_path:
        return set()
    moved: set[int] = set()
    subtree = Folder.objects.filter(mailbox=mailbox, path=old_path) | Folder.objects.filter(
        mailbox=mailbox, path__startswith=f"{old_path}/"
    )
    # Deepest first, so that parents are emptied (and removed) after their children.
    for folder in sorted(subtree, key=lambda f: f.path.count("/"), reverse=True):
        target = folder_for_path(mailbox, new_path + folder.path[len(old_path) :])
        for placement in Placement.objects.filter(folder=folder):
            if Placement.objects.filter(folder=target, message_id=placement.message_id).exists():
                placement.delete()
            else:
                placement.folder = target
                placement.save(update_fields=["folder"])
            moved.add(placement.message_id)
        if not folder.children.exists() and not folder.placements.exists():
            folder.delete()
    return moved
