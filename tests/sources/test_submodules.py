"""A git submodule under a policy folder is left out with a warning, from a working tree and a
commit alike (issue 11: `validate` used to load it from disk but not from a revision)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from controller.sources import repository
from controller.testing import ALICE, PolicyRepo

WHITELIST = """\
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: vendored, tenant: acme}
spec:
  targets: {groups: [all-windows]}
  patches: [{id: KB5044284}]
"""
WARNING = (
    "policies/vendor: warning: git submodule: ignored (policy is read from this repository only)"
)


@pytest.fixture
def with_submodule(policy_repo: PolicyRepo, tmp_path: Path) -> PolicyRepo:
    """The policy repository with a submodule at policies/vendor that holds a valid Whitelist."""
    vendor = PolicyRepo(tmp_path / "vendor")
    vendor.write("whitelist.yaml", WHITELIST)
    vendor.commit("a whitelist someone else reviews")
    policy_repo.repo.git.execute(
        [
            "git",
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "--quiet",
            "add",
            str(vendor.path),
            "policies/vendor",
        ]
    )
    policy_repo.commit("vendor policies as a submodule")
    return policy_repo


def outcome(loaded: repository.Loaded) -> tuple[list[str], list[str]]:
    """(every problem as printed, the names of the loaded objects)."""
    state = loaded.result.state
    names = sorted(obj.name for obj in state.objects) if state is not None else []
    return [str(p) for p in loaded.result.problems], names


def test_a_submodule_is_ignored_with_a_warning_from_the_working_tree_and_a_commit(
    with_submodule: PolicyRepo, tmp_path: Path
) -> None:
    """Both reads load the same objects (not the submodule's) and give the same warning."""
    path = str(with_submodule.path)
    on_disk = repository.load(path, state_dir=tmp_path / "state")
    in_git = repository.load(path, state_dir=tmp_path / "state", rev="HEAD")
    expected = ([WARNING], ["acme", "all-windows", "linux-web"])
    assert (expected, expected) == (outcome(on_disk), outcome(in_git))
    assert (True, True) == (on_disk.result.ok, in_git.result.ok)


def test_a_submodule_that_is_not_checked_out_still_warns(
    with_submodule: PolicyRepo, tmp_path: Path
) -> None:
    """A clone without `--recurse-submodules` has an empty folder; the index still names it."""
    clone = git.Repo.clone_from(str(with_submodule.path), tmp_path / "clone")
    assert [] == list((tmp_path / "clone" / "policies" / "vendor").iterdir())
    loaded = repository.load(str(clone.working_dir), state_dir=tmp_path / "state")
    assert ([WARNING], ["acme", "all-windows", "linux-web"]) == outcome(loaded)


def test_a_nested_repository_on_disk_is_ignored_with_a_warning(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A repository cloned inside policies/ (not yet a submodule) is not read as policy either."""
    nested = PolicyRepo(policy_repo.path / "policies" / "vendor")
    nested.write("whitelist.yaml", WHITELIST)
    nested.commit("nested", author=ALICE)
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path / "state")
    assert ([WARNING], ["acme", "all-windows", "linux-web"]) == outcome(loaded)
