from __future__ import annotations

from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from m365_emulator.testing import EmulatorHandle


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator() as handle:
        yield handle
