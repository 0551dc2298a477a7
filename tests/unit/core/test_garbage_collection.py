"""A serving process's collector after start-up: what existed is frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ragplatform.core.garbage_collection import YOUNG_THRESHOLD, settle_after_startup


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    startup_state = {"loaded": [object() for _ in range(10)]}
    _, middle, old = gc.get_threshold()
    settle_after_startup()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    # Frozen objects are out of the collector's reach: a full collection no longer lists them.
    assert not any(obj is startup_state for obj in gc.get_objects())
