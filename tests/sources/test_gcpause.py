"""The collector pause around a bulk read: nested blocks, and a collector the caller disabled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from controller.sources import gcpause


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
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
