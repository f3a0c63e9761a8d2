"""The collector pause around a bulk read: nested blocks, and a collector the caller disabled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from controller.sources import gcpause


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """Each test starts with nothing frozen (a reconcile pass earlier in the process freezes
    what it keeps) and leaves the collector on or off as it found it."""
    enabled = gc.isenabled()
    gcpause.unfreeze()
    yield
    if enabled:
        gc.enable()
    else:  # pragma: no cover - the suite runs with the collector on
        gc.disable()


def test_nested_blocks_enable_the_collector_when_the_last_ends() -> None:
    """The collector stays off until the outermost block ends, then runs again."""
    gc.enable()
    with gcpause.paused():
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_disabled_by_the_caller_stays_disabled() -> None:
    """A pause never turns on a collector someone else turned off."""
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_the_collector_runs_again_after_an_error() -> None:
    """An exception inside the block still ends the pause."""
    gc.enable()
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError
    assert gc.isenabled()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _in_generation(obj: object, generation: int) -> bool:
    return any(candidate is obj for candidate in gc.get_objects(generation=generation))


def test_what_the_pause_built_goes_to_the_oldest_generation_unscanned() -> None:
    """Objects made inside the pause skip the young generations (no young collection has to
    scan them), and the collector is not told to leave anything alone: a garbage cycle made
    inside the pause is still freed by a full collection."""
    gc.enable()
    with gcpause.paused():
        kept = _Node()
        cycle = _Node()
        cycle.other = _Node()
        cycle.other.other = cycle
        assert _in_generation(kept, 0)
    assert _in_generation(kept, 2)
    assert not _in_generation(kept, 0)
    assert gc.get_freeze_count() == 0
    del cycle
    assert gc.collect() >= 2  # the two nodes of the cycle (and their attribute dicts)


def test_a_disabled_collector_keeps_its_generations() -> None:
    """When the caller had the collector off, the pause leaves the generations as they were."""
    gc.disable()
    with gcpause.paused():
        kept = _Node()
    assert _in_generation(kept, 0)


def test_objects_frozen_by_someone_else_stay_frozen() -> None:
    """A process that froze its objects (before forking) keeps them frozen after a pause."""
    gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gcpause.paused():
            kept = _Node()
        assert (frozen, True) == (gc.get_freeze_count(), _in_generation(kept, 0))
    finally:
        gc.unfreeze()


def test_objects_frozen_here_stay_frozen_and_are_not_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `gcpause.freeze` froze stays frozen through a pause, known without
    `gc.get_freeze_count` (it walks every frozen object); `unfreeze` thaws it."""
    gc.enable()
    gcpause.freeze()
    try:
        frozen = gc.get_freeze_count()
        counted: list[int] = []
        real = gc.get_freeze_count
        monkeypatch.setattr(gc, "get_freeze_count", lambda: counted.append(1) or real())
        with gcpause.paused():
            kept = _Node()
        monkeypatch.undo()
        assert (frozen, True, []) == (gc.get_freeze_count(), _in_generation(kept, 0), counted)
    finally:
        gcpause.unfreeze()
    assert gc.get_freeze_count() == 0
