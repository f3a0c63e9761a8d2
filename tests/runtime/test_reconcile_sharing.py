"""One pass reads one commit: the tip is resolved once; loader and audit trail share it and its parse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.runtime.reconcile import PolicySource, Reconciler
from controller.store import Store, open_store
from controller.testing import PolicyRepo

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
EXTRA_GROUP = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: extra, tenant: acme}
spec: {selector: {os: linux}}
"""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def reconciler(repo: PolicyRepo, store: Store, tmp_path: Path) -> Reconciler:
    return Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
    )


def test_the_loader_and_the_trail_hold_the_same_parsed_objects(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Every object the pass loaded is the very object the audit walk holds: parsed once."""
    found = reconciler(example_repo, store, tmp_path)
    outcome = found.reconcile()
    walked = found.trail._cache
    assert "applied" == outcome.result
    assert found.last_valid is not None
    assert walked is not None
    in_tree = {id(obj) for parsed in walked.tree.files.values() for obj in parsed.objects}
    assert len(found.last_valid.objects) == len(in_tree)
    assert [] == [obj.key for obj in found.last_valid.objects if id(obj) not in in_tree]


def test_the_trail_records_the_commit_the_loader_read(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """A commit landing between the load and the audit step waits for the next pass."""
    found = reconciler(example_repo, store, tmp_path)
    loaded_revision, _ = found.fetch_and_load()
    example_repo.write("inventory/groups/extra.yaml", EXTRA_GROUP)
    landed = example_repo.commit("a group lands mid-pass")
    synced, error = found.audit_step(now=NOW)
    assert synced is not None
    assert error is None
    assert loaded_revision == f"main@sha1:{synced.tip}"
    assert landed != synced.tip
    found.reconcile()
    assert landed == found.trail.sync(now=NOW).tip
