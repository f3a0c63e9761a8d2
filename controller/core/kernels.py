"""Packages installed at several versions at once (kernels), and the reboot they imply.

Purely computational, no side effects. Package managers keep several versions of an
*install-only* package side by side so that a bad kernel can be booted around: dnf's
`installonlypkgs` (dnf/const.py: `kernel`, `kernel-PAE`, and every package providing
`installonlypkg(kernel)` or `multiversion(kernel)`: `kernel-core`, `kernel-modules`,
`kernel-devel`, the `-rt`, `-debug`, `-64k`, `-uek` variants) and, on Debian and Ubuntu, one package
name per kernel ABI (`linux-image-6.1.0-26-amd64`, `linux-headers-6.8.0-45-generic`,
`linux-modules-6.8.0-45-generic`). An advisory is judged against the newest installed version
of such a package: the older ones stay installed on purpose, and upgrading them is not possible.

The running kernel (`uname -r`, the inventory's `kernel`) names one installed kernel: on rpm
systems by `version-release.arch` (`4.18.0-553.100.1.el8_10.x86_64`), on Debian and Ubuntu by the
image package's name (`linux-image-` + `6.1.0-26-amd64`). A reboot is needed when a newer
version of that package (or of its ABI family) is installed; a running kernel that matches no
installed package is not judged (it was removed, or the agent named it otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.core.versions import Scheme, compare, parse_evr

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from controller.core.applicability import InstalledPackage

# dnf's installonlypkgs by name (the `installonlypkg(kernel)` providers of RHEL, Fedora, Oracle
# Linux and SUSE's `multiversion(kernel)` ones); kernel-headers and kernel-tools are not among them.
_RPM_INSTALL_ONLY = re.compile(
    r"kernel(?:-(?:PAE|debug|rt|rt-debug|64k|64k-debug|uek|uek-debug|zfcpdump|lpae|default|azure))?"
    r"(?:-(?:core|modules|modules-core|modules-extra|modules-internal|modules-partner|devel"
    r"|devel-matched))?"
)
# The variants whose files are the bootable image: the running kernel is one of these.
_RPM_IMAGE = re.compile(r"kernel(?:-[A-Za-z0-9]+(?:-debug)?)?(?:-core)?")
# Debian and Ubuntu: `linux-<kind>-<abi>[-<flavour>]`, the ABI (`6.1.0-26`) in the name.
_DEB_INSTALL_ONLY = re.compile(
    r"linux-(?P<kind>image|image-unsigned|headers|modules|modules-extra|buildinfo|objects)"
    r"-(?P<abi>\d+\.\d+(?:\.\d+)?-\d+)(?P<flavour>-[a-z0-9][a-z0-9+.-]*)?"
)
_DEB_IMAGE_KINDS = ("linux-image-", "linux-image-unsigned-")


def install_only_group(scheme: Scheme, name: str) -> str | None:
    """The family whose versions coexist, for an install-only package name, else None:
    `kernel-core` -> `kernel-core`, `linux-image-6.1.0-26-amd64` -> `linux-image-*-amd64`."""
    if scheme is Scheme.RPM:
        return name if name.startswith("kernel") and _RPM_INSTALL_ONLY.fullmatch(name) else None
    if scheme is Scheme.DPKG and name.startswith("linux-"):
        match = _DEB_INSTALL_ONLY.fullmatch(name)
        if match is not None:
            return f"linux-{match['kind']}-*{match['flavour'] or ''}"
    return None


def judged_packages(
    scheme: Scheme, packages: Iterable[InstalledPackage]
) -> Iterator[InstalledPackage]:
    """The packages applicability judges: every package, except that of an install-only family
    (per architecture) only the newest installed version counts."""
    newest: dict[tuple[str, str], InstalledPackage] = {}
    for package in packages:
        group = install_only_group(scheme, package.name)
        if group is None:
            yield package
            continue
        key = (group, package.arch)
        kept = newest.get(key)
        if kept is None or _newer(scheme, package, kept):
            newest[key] = package
    yield from newest.values()


@dataclass(frozen=True, slots=True)
class KernelReboot:
    """A reboot the inventory implies: `running` is `uname -r`, `package` the newest installed
    kernel package of the same family and `installed` its version."""

    running: str
    package: str
    installed: str

    @property
    def reason(self) -> str:
        """A sentence for an operator."""
        return (
            f"running kernel {self.running} is older than the installed {self.package} "
            f"{self.installed}"
        )


def detect_reboot(
    scheme: Scheme | None, kernel: str | None, packages: Iterable[InstalledPackage]
) -> KernelReboot | None:
    """The reboot needed to run the newest installed kernel, or None (none needed, or the
    running kernel matches no installed package and cannot be judged)."""
    if scheme is None or not kernel:
        return None
    families: dict[tuple[str, str], list[InstalledPackage]] = {}
    for package in packages:
        group = install_only_group(scheme, package.name)
        if group is not None:
            families.setdefault((group, package.arch), []).append(package)
    for family in families.values():
        running = next((p for p in family if _is_running(scheme, p, kernel)), None)
        if running is None:
            continue
        newest = max(family, key=lambda p: _Sortable(scheme, p))
        if _newer(scheme, newest, running):
            return KernelReboot(kernel, newest.name, newest.full_version(scheme))
    return None


def as_running(
    scheme: Scheme, kernel: str, packages: Iterable[InstalledPackage]
) -> tuple[InstalledPackage, ...]:
    """The packages as the running system uses them: in the running kernel's install-only
    family, the versions newer than the running one are left out (installed, not booted).
    Judging these finds what the pending reboot will fix (`applicability.detect_pending_reboot`)."""
    listed = tuple(packages)
    running = next(
        (
            p
            for p in listed
            if install_only_group(scheme, p.name) and _is_running(scheme, p, kernel)
        ),
        None,
    )
    if running is None:
        return listed
    family = (install_only_group(scheme, running.name), running.arch)
    return tuple(
        p
        for p in listed
        if (install_only_group(scheme, p.name), p.arch) != family or not _newer(scheme, p, running)
    )


def _is_running(scheme: Scheme, package: InstalledPackage, kernel: str) -> bool:
    if scheme is Scheme.DPKG:
        return any(package.name == kind + kernel for kind in _DEB_IMAGE_KINDS)
    if not _RPM_IMAGE.fullmatch(package.name):
        return False
    _, version, release = parse_evr(package.full_version(scheme))
    # `uname -r` is `version-release.arch`, with `+debug`/`+rt` style suffixes on some variants.
    return kernel.startswith(f"{version}-{release}.")


def _newer(scheme: Scheme, a: InstalledPackage, b: InstalledPackage) -> bool:
    try:
        return compare(scheme, a.full_version(scheme), b.full_version(scheme)) > 0
    except ValueError:
        return False  # an unparseable version is never the newest


class _Sortable:
    """`max` key: orders packages by version (an unparseable one sorts as the oldest)."""

    __slots__ = ("package", "scheme")

    def __init__(self, scheme: Scheme, package: InstalledPackage) -> None:
        self.scheme, self.package = scheme, package

    def __lt__(self, other: _Sortable) -> bool:
        return _newer(self.scheme, other.package, self.package)
