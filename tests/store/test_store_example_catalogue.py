"""The generated example catalogue: up to date, complete for the example policies, loadable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from controller.feeds import native
from controller.store import Store, catalogue

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "feeds" / "example-catalogue.json"
NAMED_BY_POLICIES = {
    "KB5044284",
    "KB5044033",
    "KB5011048",
    "KB5043050",
    "USN-7123-1",
    "USN-7100-1",
    "DSA-5800-1",
    "RHSA-2026:1234",
}


def generator():
    spec = importlib.util.spec_from_file_location(
        "generate_catalogue", ROOT / "scripts" / "generate_catalogue.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_file_is_what_the_generator_writes() -> None:
    """The committed catalogue equals a fresh run of the (deterministic) generator."""
    module = generator()
    assert CATALOGUE.read_text(encoding="utf-8") == module.render(module.generate())


def test_catalogue_parses_and_names_the_example_ids(store: Store) -> None:
    """The native importer reads every record; the example policies' ids are there; it loads."""
    parsed = native.parse_file(CATALOGUE, name="example-catalogue", release=None)
    counts = catalogue.upsert_records(store, parsed.records)
    loaded = catalogue.load_catalogue(store)
    assert () == parsed.errors
    assert NAMED_BY_POLICIES <= set(loaded)
    assert (len(parsed.records), 0, 0) == (counts.new, counts.updated, counts.unchanged)
    assert len(parsed.records) > 1500
    assert CATALOGUE.stat().st_size < 2 * 1024 * 1024
