"""Reading an archived original back from the blob store."""

from __future__ import annotations

from mailvault.archive.models import Message
from mailvault.archive.store import store_for
from mailvault.tenancy.context import current_tenant


def read_original(message: Message) -> bytes:
    """The exact bytes that were archived (the store checks their SHA-256)."""
    with store_for(current_tenant()) as store:
        return store.get(message.sha256)
