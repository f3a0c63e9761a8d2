"""Helpers for the audit-trail tests: a repository whose commits are made with the git command
line (several authors, fixed dates, merges, squashes, SSH signatures)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.testing import GROUPS, TENANTS, PolicyRepo


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


ALICE = Author("Alice Admin", "alice@acme.example")
BOB = Author("Bob Builder", "bob@acme.example")
MALLORY = Author("Mallory Intruder", "mallory@evil.example")
GITHUB = Author("GitHub", "noreply@github.com")


@dataclass(frozen=True)
class SshKey:
    """An ed25519 key pair made by ssh-keygen, and the identity it signs as."""

    private: Path
    public_line: str
    email: str

    @property
    def allowed_signers_line(self) -> str:
        return f"{self.email} {self.public_line}"

    def fingerprint(self) -> str:
        output = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.private.with_suffix(".pub"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return output.split()[1]


@dataclass(frozen=True)
class GpgKey:
    """A GPG key made by gpg in its own home: its fingerprint and armored public key."""

    home: Path
    fingerprint: str
    armored: str
    uid: str


def approval(
    name: str, patches: str, *, tenant: str = "acme/retail", group: str = "linux-web"
) -> str:
    return (
        "apiVersion: patchctl/v1\nkind: Approval\n"
        f"metadata: {{name: {name}, tenant: {tenant}}}\n"
        f"spec:\n  patches: [{patches}]\n  targets: {{groups: [{group}]}}\n  reason: test\n"
    )


class History:
    """A policy repository whose commits are made by the git command line, as people make them:
    several authors, fixed dates, merges, squashes, signatures."""

    def __init__(self, path: Path) -> None:
        self.policy = PolicyRepo(path)
        self.path = path
        self.repo = self.policy.repo
        self.clock = 1_767_225_600  # 2026-01-01T00:00:00Z

    def git(
        self,
        *args: str,
        author: Author = ALICE,
        committer: Author | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run git in the repository as `author` (and `committer`), at the current clock."""
        committer = committer or author
        env = {
            **os.environ,
            **(env or {}),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": f"@{self.clock} +0000",
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": f"@{self.clock} +0000",
        }
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def write(self, relative: str, text: str) -> None:
        self.policy.write(relative, text)

    def remove(self, relative: str) -> None:
        self.policy.remove(relative)

    def commit(
        self,
        message: str,
        *,
        author: Author = ALICE,
        committer: Author | None = None,
        key: SshKey | GpgKey | None = None,
    ) -> str:
        """Commit everything in the working tree; signed with `key` when given."""
        self.git("add", "--all")
        self.clock += 3600
        env: dict[str, str] = {}
        if isinstance(key, SshKey):
            signing = [
                "-c",
                "gpg.format=ssh",
                "-c",
                f"user.signingkey={key.private}",
                "commit",
                "-S",
            ]
        elif isinstance(key, GpgKey):
            signing = [
                "-c",
                "gpg.format=openpgp",
                "-c",
                f"user.signingkey={key.fingerprint}",
                "commit",
                "-S",
            ]
            env["GNUPGHOME"] = str(key.home)
        else:
            signing = ["commit"]
        self.git(
            *signing,
            "--allow-empty",
            "-q",
            "-m",
            message,
            author=author,
            committer=committer,
            env=env,
        )
        return self.head()

    def merge(
        self, branch: str, message: str, *, author: Author, committer: Author = GITHUB
    ) -> str:
        """A `--no-ff` merge of `branch` into the current branch, as a forge records it."""
        self.clock += 3600
        self.git(
            "merge", "--no-ff", "-q", "-m", message, branch, author=author, committer=committer
        )
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def seed(self) -> str:
        """The tenants and groups every scenario starts from."""
        self.write("inventory/tenants.yaml", TENANTS)
        self.write("inventory/groups/groups.yaml", GROUPS)
        return self.commit("tenants and groups")


def linux_device(store: Any, *, missing: tuple[str, ...], now: datetime) -> str:
    """Enrol web-01 (Ubuntu, acme/retail) through the store and store a scan missing `missing`."""
    # imported here: the conftest loads this module before the store package is importable
    from controller.store import devices, reports  # noqa: PLC0415

    with store.write() as conn:
        device = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname="web-01",
                os_family="linux",
                os_name="Ubuntu",
                os_version="24.04",
                role="server",
                agent_version="1.0",
                labels={},
            ),
            poll_interval=60,
            now=now,
        ).device_id
        scan = reports.Scan(
            scanned_at=now,
            reboot_required=False,
            missing=tuple((p, {}) for p in missing),
            installed=(),
        )
        reports.write_reports(conn, [reports.Report(device_id=device, scan=scan)], now=now)
    return device
