"""A real Debian 12 system for the end-to-end agent test, built with Debian's `debootstrap`.

The first build (`debootstrap --variant=minbase bookworm` from deb.debian.org, then
`python3-minimal` from the bookworm point release, then `bookworm-security` added to its sources)
is saved as a tar file under the cache folder (`PATCHCTL_TEST_CACHE`, default
`~/.cache/patchctl-tests`) and reused by later runs; every test extracts its own copy into its
tmp_path, so a test never changes the cached image. Nothing outside the cache folder and the
test's folder is written, except installing the `debootstrap` package on the host when missing.

`python -m debianroot` (from tests/agent) builds the cache ahead of a test run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
SUITE = "bookworm"
IMAGE_NAME = "debian12-minbase-python3.tar"
SOURCES = f"deb {MIRROR} {SUITE} main\ndeb {SECURITY} {SUITE}-security main\n"
ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "LC_ALL": "C",
    "HOME": "/root",
}


def cache_dir() -> Path:
    return Path(os.environ.get("PATCHCTL_TEST_CACHE") or Path.home() / ".cache" / "patchctl-tests")


def run(args: list[str], *, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a command, failing with its output when it fails."""
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=ENV, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def chroot(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run(["chroot", str(root), *args], timeout=timeout)


def ensure_debootstrap() -> None:
    if shutil.which("debootstrap", path=ENV["PATH"]) is None:
        run(["apt-get", "install", "-y", "-q", "debootstrap"])


def build_image(cache: Path) -> Path:
    """The cached image's path, building it first when it is not there (several minutes)."""
    image = cache / IMAGE_NAME
    if image.exists():
        return image
    ensure_debootstrap()
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f"build-{os.getpid()}"
    root = work / "root"
    try:
        root.mkdir(parents=True)
        run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], timeout=1800)
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
        # python3-minimal from the point release only, so the image is a host that has
        # missed the security updates since; then the security suite is added.
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-minimal")
        (root / "etc" / "apt" / "sources.list").write_text(SOURCES)
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "clean")
        partial = image.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".")
        partial.rename(image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


DNF_IMAGE_NAME = "debian12-minbase-python3-dnf.tar"
DNF_PACKAGES = ("dnf", "rpm", "createrepo-c", "dnf-plugins-core")


def build_dnf_image(cache: Path) -> Path:
    """The cached image plus Debian's dnf, rpm (rpmbuild), createrepo-c and dnf-plugins-core:
    a real dnf to drive an install root with (several minutes on first use)."""
    image = cache / DNF_IMAGE_NAME
    if image.exists():
        return image
    base = build_image(cache)
    work = cache / f"build-dnf-{os.getpid()}"
    try:
        root = extract(base, work / "root")
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *DNF_PACKAGES)
        chroot(root, "apt-get", "clean")
        partial = image.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".")
        partial.rename(image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def extract(image: Path, target: Path) -> Path:
    """A private copy of the image at `target` (the chroot's root directory)."""
    target.mkdir(parents=True)
    # tar(1) keeps devices, owners and hard links exactly as debootstrap made them
    run(["tar", "-xf", str(image), "-C", str(target), "--numeric-owner"])
    shutil.copyfile("/etc/resolv.conf", target / "etc" / "resolv.conf")
    return target


if __name__ == "__main__":
    started = time.monotonic()
    print(build_image(cache_dir()), f"{time.monotonic() - started:.0f} s")  # noqa: T201
    print(build_dnf_image(cache_dir()), f"{time.monotonic() - started:.0f} s")  # noqa: T201
    sys.exit(0)
