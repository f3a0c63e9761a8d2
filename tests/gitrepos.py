"""Real git repositories for tests: write files, commit as someone, read shas back."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALICE = git.Actor("Alice Admin", "alice@example.com")


class PolicyRepo:
    """A git repository in a temporary directory, driven through GitPython."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch=branch)

    def write(self, relative: str, text: str | bytes) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
        return target

    def remove(self, relative: str) -> None:
        (self.path / relative).unlink()

    def commit(self, message: str = "change", *, author: git.Actor = ALICE) -> str:
        self.repo.git.add(all=True)
        commit = self.repo.index.commit(message, author=author, committer=author)
        return commit.hexsha

    def copy_example(self) -> None:
        """The project's own example repository (policies/ and inventory/)."""
        for top in ("policies", "inventory"):
            shutil.copytree(PROJECT_ROOT / top, self.path / top)
        feeds = PROJECT_ROOT / "feeds"
        if feeds.is_dir():
            shutil.copytree(feeds, self.path / "feeds")


TENANTS = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
"""

GROUPS = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux-web, tenant: acme/retail}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-windows, tenant: acme}
spec: {selector: {os: windows}}
"""


@pytest.fixture
def policy_repo(tmp_path: Path) -> PolicyRepo:
    """A repository with one tenant and two groups, committed once."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("inventory/tenants.yaml", TENANTS)
    repo.write("inventory/groups/groups.yaml", GROUPS)
    repo.commit("tenants and groups")
    return repo


@pytest.fixture
def example_repo(tmp_path: Path) -> PolicyRepo:
    """The project's example repository, committed into a fresh git repository."""
    repo = PolicyRepo(tmp_path / "example")
    repo.copy_example()
    repo.commit("example repository")
    return repo
