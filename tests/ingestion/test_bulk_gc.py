"""A bulk import collects garbage less often, and puts the collector back afterwards."""

from __future__ import annotations

import gc

import pytest

from mailvault.ingestion.bulk_gc import BULK_YOUNG_THRESHOLD, fewer_collections


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_collector_is_slowed_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with fewer_collections():
        assert gc.get_threshold()[0] == BULK_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen  # what was alive before is never walked
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_inside_are_still_collected() -> None:
    with fewer_collections(young=100):
        for _ in range(5_000):
            _Cycle()
        # Not turned off: young collections ran on their own and freed most of them.
        assert sum(isinstance(o, _Cycle) for o in gc.get_objects()) < 1_000


def test_an_error_inside_restores_the_collector() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("import failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
