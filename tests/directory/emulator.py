"""The Microsoft 365 emulator for Mailvault's tests: started per test (it starts in a
fraction of a second), Mailvault's settings pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test.utils import override_settings

from m365_emulator.testing import EmulatorHandle, running_emulator


def m365_settings(m365: EmulatorHandle, **extra: Any) -> dict[str, Any]:
    return {
        "MAILVAULT_M365_AUTHORITY_BASE": m365.base_url,
        "MAILVAULT_M365_GRAPH_BASE": m365.graph_base,
        "MAILVAULT_M365_CLIENT_ID": m365.client_id,
        "MAILVAULT_M365_CLIENT_SECRET": m365.client_secret,
        "MAILVAULT_M365_CA_BUNDLE": str(m365.ca_path),
        "MAILVAULT_M365_MAX_RETRIES": 10,
        **extra,
    }


@contextmanager
def emulator(**options: Any) -> Iterator[EmulatorHandle]:
    options.setdefault("fixture", "generated")
    options.setdefault("users", 16)
    options.setdefault("groups", 6)
    with running_emulator(**options) as m365, override_settings(**m365_settings(m365)):
        # Injected 429/503 ask for a short wait, so that the tests stay fast.
        m365.set_faults(retry_after="0.05")
        yield m365
