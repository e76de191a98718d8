"""The steps of the pipeline that talk to other areas: parse (with attachment text),
store (the blob store) and index (the search index). Kept apart from the batching logic
in :mod:`.pipeline` so each can be tested and replaced on its own."""

from __future__ import annotations

from mailvault.archive.models import Message
from mailvault.ingestion.parse import ParsedMessage, parse_message
from mailvault.tenancy.models import Tenant


def parse(raw: bytes) -> ParsedMessage:
    return parse_message(raw)


def store_blobs(tenant: Tenant, raws: list[bytes]) -> None:
    raise NotImplementedError("wired to the blob store once it lands")


def index_messages(pairs: list[tuple[Message, ParsedMessage]]) -> None:
    raise NotImplementedError("wired to the search index once it lands")
