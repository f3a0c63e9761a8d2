"""Fixtures of the agent tests.

What is real: in the end-to-end tests, a Debian 12 system built by Debian's `debootstrap` from
deb.debian.org (cached between runs, see `debianroot.py`), its apt and dpkg, the real
bookworm-security archive, Debian's dnf/rpm on an install root (`rpmrepo.py`), `patchctl serve`
as a subprocess on loopback, and the bundled zipapp run with that system's own
`python3-minimal` under `chroot`; state directories, scripts and reboot commands everywhere.
What is faked, in the unit tests only: the package manager's far side (command output recorded
on those real systems, `agenthelpers.Replay`), the controller (`agenthelpers.FakeController`),
and WUA's COM object model (no Windows here).

The end-to-end tests need root (chroot) and the network; without them they skip with the
reason, except in CI (CI=true), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import debianroot
import pytest
from required import unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator


def _unavailable() -> str | None:
    """Why a real Debian system cannot be built here, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (debootstrap and chroot)"
    try:
        socket.create_connection(("deb.debian.org", 80), timeout=10).close()
    except OSError as exc:
        return f"no network to deb.debian.org ({exc})"
    return None


@pytest.fixture(scope="session")
def debian12_image() -> Path:
    """The cached debootstrap image (built on first use, several minutes)."""
    reason = _unavailable()
    if reason is not None:
        unavailable(f"the Debian 12 end-to-end test {reason}")
    return debianroot.build_image(debianroot.cache_dir())


@pytest.fixture(scope="session")
def dnf_image(debian12_image: Path) -> Path:
    """The cached image with Debian's dnf, rpm and createrepo-c (built on first use)."""
    return debianroot.build_dnf_image(debianroot.cache_dir())


@pytest.fixture
def debian12(debian12_image: Path, tmp_path: Path) -> Iterator[Path]:
    """A private Debian 12 root in tmp_path with fresh apt lists and its own machine id."""
    root = debianroot.extract(debian12_image, tmp_path / "debian12")
    (root / "etc" / "machine-id").write_text("5f0c4bd2e6a84c0c9a1e7d2b3c4d5e6f\n")
    debianroot.chroot(root, "apt-get", "update", "-q", timeout=600)
    yield root
    shutil.rmtree(root, ignore_errors=True)  # 250 MB: not kept for pytest's last three runs
