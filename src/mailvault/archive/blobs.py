"""Reading an archived original back from the blob store."""

from __future__ import annotations

from mailvault.archive.models import Message


def read_original(message: Message) -> bytes:
    raise NotImplementedError("wired to the blob store once it lands")
