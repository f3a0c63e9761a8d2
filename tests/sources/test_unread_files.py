"""A file under a policy folder that is not a policy file (`x.json`, `x.YAML`) is left out with a
warning naming it, from a working tree and a commit alike; hidden files and Markdown notes are
left out silently. Real git repositories in tmp_path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.sources import repository

if TYPE_CHECKING:
    from pathlib import Path

    from controller.testing import PolicyRepo

BROKEN = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: x, tenant: acme}
spec: {patches: [123]}
"""
NOT_READ = "warning: not read as policy: policy files end in .yaml or .yml"


def test_files_that_are_not_read_are_named_from_the_working_tree_and_a_commit(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """Each skipped file is one warning; the objects loaded and the verdict do not change."""
    before = repository.load(str(policy_repo.path), state_dir=tmp_path / "state").result
    for path in (
        "policies/approvals/x.json",
        "policies/approvals/y.YAML",
        "inventory/z.Yml",
        "policies/approvals/README.md",
        "policies/approvals/.gitkeep",
        "policies/.drafts/w.json",
    ):
        policy_repo.write(path, BROKEN)
    policy_repo.commit("files that are not policy")
    path = str(policy_repo.path)
    expected = [
        f"inventory/z.Yml: {NOT_READ} (suffixes are case-sensitive: rename it to z.yml)",
        f"policies/approvals/x.json: {NOT_READ}",
        f"policies/approvals/y.YAML: {NOT_READ} (suffixes are case-sensitive: rename it to y.yaml)",
    ]
    for loaded in (
        repository.load(path, state_dir=tmp_path / "state"),
        repository.load(path, state_dir=tmp_path / "state", rev="HEAD"),
    ):
        assert (expected, True, before.state.objects if before.state else None) == (
            sorted(str(p) for p in loaded.result.problems),
            loaded.result.ok,
            loaded.result.state.objects if loaded.result.state else None,
        )
