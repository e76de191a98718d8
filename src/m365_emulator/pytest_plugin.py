"""pytest fixtures for tests that need the emulator. In a conftest.py:

    from m365_emulator.pytest_plugin import m365, m365_server  # noqa: F401

``m365_server`` (one per session and conftest directory) runs the emulator with the
corpus fixture (the generated one when the corpus is absent), consent granted, journal
reports going to 127.0.0.1:2525 unless a rule names its own smarthost. ``m365`` is the
same handle for one test: fault switches and token expiry are reset after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from m365_emulator.testing import EmulatorHandle, running_emulator


@pytest.fixture(scope="session")
def m365_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    with running_emulator(state_dir=tmp_path_factory.mktemp("m365-emulator")) as handle:
        yield handle


@pytest.fixture
def m365(m365_server: EmulatorHandle) -> Iterator[EmulatorHandle]:
    yield m365_server
    m365_server.reset_faults()
    m365_server.set_consent(True)
