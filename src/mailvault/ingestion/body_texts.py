"""Body texts of archived messages as the index saw them, for phrase checks.

The search index keeps the body without positions (see ``search._schema``); a phrase over
the body is checked against the texts this module reads back from the store and parses
exactly as ingestion did (``parse_body_text``: the body text of ``parse_message``).
Texts never change for a message id, so the last few thousand are kept per process:
paging through the results of one phrase search, or running it twice, reads each
message once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from mailvault.archive.models import Message
from mailvault.archive.store import StoreError, store_for
from mailvault.ingestion.parse import parse_body_text
from mailvault.tenancy.context import current_tenant, tenant_context
from mailvault.tenancy.models import Tenant

logger = logging.getLogger(__name__)

CACHE_CHARS = 32 * 1024 * 1024  # about 64 MB of str at most, usually far less

_cache: OrderedDict[tuple[int, int], str] = OrderedDict()
_cache_chars = 0
_lock = threading.Lock()


def body_texts(message_ids: list[int]) -> dict[int, str]:
    """Message id -> body text, for the active tenant's messages among ``message_ids``.

    A message that is gone or whose stored bytes cannot be read is left out (and logged):
    callers decide whether that fails closed (compliance) or matches nothing (search).
    """
    tenant_id = current_tenant().pk
    found: dict[int, str] = {}
    with _lock:
        for message_id in message_ids:
            text = _cache.get((tenant_id, message_id))
            if text is not None:
                _cache.move_to_end((tenant_id, message_id))
                found[message_id] = text
    wanted = [m for m in message_ids if m not in found]
    if not wanted:
        return found
    rows = Message.objects.filter(pk__in=wanted).values_list("pk", "sha256")
    with store_for(current_tenant()) as store:
        for message_id, sha256 in rows:
            try:
                raw = store.get(sha256)
            except StoreError as exc:
                logger.error("message %s (%s) could not be read: %s", message_id, sha256, exc)
                continue
            found[message_id] = parse_body_text(raw)
            _remember(tenant_id, message_id, found[message_id])
    return found


def loader_for(tenant_key: str) -> Callable[[list[int]], dict[int, str]] | None:
    """A loader of body texts for the tenant whose index key is ``tenant_key`` (its
    primary key), usable outside that tenant's context; None if there is no such tenant."""
    tenant = Tenant.objects.filter(pk=int(tenant_key)).first() if tenant_key.isdigit() else None
    if tenant is None:
        return None

    def load(message_ids: list[int]) -> dict[int, str]:
        with tenant_context(tenant):
            return body_texts(message_ids)

    return load


def _remember(tenant_id: int, message_id: int, text: str) -> None:
    global _cache_chars
    if len(text) > CACHE_CHARS // 8:
        return
    with _lock:
        if (tenant_id, message_id) in _cache:
            return
        _cache[(tenant_id, message_id)] = text
        _cache_chars += len(text)
        while _cache_chars > CACHE_CHARS:
            _key, dropped = _cache.popitem(last=False)
            _cache_chars -= len(dropped)
