"""Chaos (issue 5): while journal reports and smtp-source's load stream in, the listener
and the spool consumers are SIGKILLed and restarted again and again; every message that
got a ``250`` must end up archived exactly once per mailbox (journal, sender, recipient).

N here is 2,000 small reports over 8 sessions (a few seconds of sending at this
machine's rate), 2 consumer processes, and a kill every 0.5 to 1.5 s, alternating between
the listener and a consumer, going on while the spool drains until each was killed at
least 3 times (a restart costs ~2 s of Django start-up): every kind of kill lands while
mail is in flight, and the test stays within the suite's time budget. The
10,000-message run is ``bench/smtp_journal.py --chaos``.
"""

from __future__ import annotations

import pytest

from .chaos import run_chaos
from .smtp_servers import SMTP_SOURCE, Installation, need

pytestmark = pytest.mark.single_db

COUNT = 2000


def test_every_acknowledged_message_is_archived_exactly_once_per_mailbox(
    installation: Installation,
) -> None:
    need(SMTP_SOURCE)
    result = run_chaos(
        installation,
        count=COUNT,
        kill_interval=(0.5, 1.5),
        min_kills=3,
        send_timeout=90,
        drain_timeout=60,
    )
    print(
        f"chaos: {result.acked} acknowledged, {result.archived_ok} archived exactly once per "
        f"mailbox; {result.listener_kills} listener and {result.consumer_kills} consumer "
        f"kills; {result.temporary_failures} retries; smtp-source runs {result.load_runs}; "
        f"sent in {result.send_seconds:.1f} s, drained in {result.drain_seconds:.1f} s"
    )
    assert result.acked == COUNT  # the sender retries like an MTA until it gets its 250
    assert result.missing == [], f"{len(result.missing)} lost: {result.missing[:10]}"
    assert result.wrong == {}, f"not exactly once per mailbox: {list(result.wrong.items())[:5]}"
    assert result.archived_ok == COUNT
    assert result.listener_kills >= 3 and result.consumer_kills >= 3
