"""Report tests: a real SQLite store holding a known fleet (see `reportfleet`), real git
repositories in `tmp_path`. Nothing is faked; the clock is the constant `reportfleet.NOW`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reportfleet import build_fleet

from controller.store import Store, open_store

__all__ = ["fleet_store"]


@pytest.fixture
def fleet_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store holding the fleet of the module docstring."""
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    build_fleet(store)
    yield store
    store.close()
