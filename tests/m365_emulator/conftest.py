"""The emulator for these tests: one per session (see m365_emulator.pytest_plugin).

These tests assert on the Enron users and messages of the corpus fixture, so they need
the shared corpus: without it they skip with the reason (and fail under CI=true).
"""

import pytest

from corpus import corpus_archive
from m365_emulator.pytest_plugin import m365, m365_server  # noqa: F401


@pytest.fixture(autouse=True)
def _enron_corpus() -> None:
    corpus_archive("enron-subset")
