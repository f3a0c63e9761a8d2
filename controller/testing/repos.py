"""Real git repositories for tests: write files, commit as someone, read shas back.

`TENANTS` and `GROUPS` are small inventory documents (tenant acme with client retail; groups
linux-web and all-windows) to start a policy repository from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from controller.testing.serving import PROJECT_ROOT

ALICE = git.Actor("Alice Admin", "alice@example.com")


class PolicyRepo:
    """A git repository in a (temporary) directory `path`, driven through GitPython; `repo` is
    the `git.Repo`. Paths given to `write`/`remove` are relative to the work tree."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch=branch)

    def write(self, relative: str, text: str | bytes) -> Path:
        """Write `text` (UTF-8) or bytes to `relative`, creating directories; its path."""
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
        """Stage everything and commit as `author` (also the committer); the new sha."""
        self.repo.git.add(all=True)
        commit = self.repo.index.commit(message, author=author, committer=author)
        return commit.hexsha

    def copy_example(self) -> None:
        """Copy the project's example repository (policies/, inventory/ and feeds/) from a
        source checkout (`PROJECT_ROOT`); not available from an installed wheel."""
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


def policy_repository(path: Path) -> PolicyRepo:
    """A repository at `path` with `TENANTS` and `GROUPS`, committed once."""
    repo = PolicyRepo(path)
    repo.write("inventory/tenants.yaml", TENANTS)
    repo.write("inventory/groups/groups.yaml", GROUPS)
    repo.commit("tenants and groups")
    return repo


def example_repository(path: Path) -> PolicyRepo:
    """The project's example repository (`PolicyRepo.copy_example`), committed at `path`."""
    repo = PolicyRepo(path)
    repo.copy_example()
    repo.commit("example repository")
    return repo
