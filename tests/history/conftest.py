"""Fixtures for the audit trail: real git repositories in tmp_path, real `git`, `ssh-keygen` and
`gpg` processes. Nothing is faked; commit dates are fixed so every field can be asserted.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from historyrepos import ALICE, BOB, MALLORY, GpgKey, History, SshKey

__all__ = ["git_history", "gpg_key", "ssh_keys"]


@pytest.fixture
def git_history(tmp_path: Path) -> History:
    """An empty repository on `main` with fixed commit dates."""
    return History(tmp_path / "repo")


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SshKey]:
    """ed25519 keys for alice, bob and mallory, made by the real ssh-keygen."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (apt-get install openssh-client)")
    folder = tmp_path_factory.mktemp("ssh")
    keys = {}
    for who, email in (("alice", ALICE.email), ("bob", BOB.email), ("mallory", MALLORY.email)):
        private = folder / who
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(private)],
            check=True,
        )
        public = private.with_suffix(".pub").read_text().strip()
        keys[who] = SshKey(private, public, email)
    return keys


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """An ed25519 GPG signing key without passphrase, made by the real gpg in its own home."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed: GPG signatures are not tested here")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    uid = "Gina Signer <gina@acme.example>"

    def gpg(*args: str) -> str:
        return subprocess.run(
            [
                "gpg",
                "--batch",
                "--homedir",
                str(home),
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    gpg("--quick-gen-key", uid, "ed25519", "sign", "never")
    fingerprint = next(
        line.split(":")[9]
        for line in gpg("--with-colons", "--list-keys").splitlines()
        if line.startswith("fpr:")
    )
    yield GpgKey(home, fingerprint, gpg("--armor", "--export", fingerprint), uid)
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True
    )
