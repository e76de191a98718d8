"""The one place compliance actions (deletions, holds, exports, approvals) reach the audit
log, through ``mailvault.compliance.audit.record``.

The web middleware already records each request that causes these actions; this entry
says what the action did (how many messages, which hold), and covers jobs, which have no
request. A failure to audit is logged loudly but does not undo a finished deletion.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mailvault.compliance")


def record(activity: str, actor: Any, obj: Any, message: str, *, success: bool = True) -> None:
    name = getattr(actor, "username", "") or ""
    log.info("%s by %s: %s", activity, name or "system", message)
    try:
        from mailvault.compliance import audit

        audit.record(
            activity,
            actor=name,
            actor_type="user" if name else "system",
            object="" if obj is None else f"{type(obj).__name__} {getattr(obj, 'pk', '')}: {obj}",
            success=success,
            message=message,
        )
    except Exception:
        log.exception("could not write the audit entry for %s", activity)
