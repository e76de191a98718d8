"""A real slapd per test session; a Microsoft 365 emulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from directory.slapd import Slapd, entries, start_slapd, stop_slapd
from m365_emulator.testing import EmulatorHandle


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"), entries())
    yield server
    stop_slapd(server)


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator() as handle:
        yield handle
