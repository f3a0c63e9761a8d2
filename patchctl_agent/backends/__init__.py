"""The backend interface: what the agent needs from an OS's package manager, and the choice of
backend by what the host has (apt, dnf/yum, Windows Update Agent).

A backend only reads and changes the host; it knows nothing about HTTP or the controller. Its
values are NamedTuples that become the protocol's JSON (DESIGN.md §4): Debian's
`python3-minimal` has no `dataclasses`, and the agent runs there.
"""

from __future__ import annotations

import abc
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from patchctl_agent import procs

# Per-patch results of an install, as the protocol names them.
INSTALLED = "installed"
FAILED = "failed"
SKIPPED = "skipped"
NOT_APPLICABLE = "not-applicable"


class OsInfo(NamedTuple):
    family: str  # linux | windows
    name: str  # Debian GNU/Linux, Ubuntu, Rocky Linux, Windows Server 2022
    version: str  # 12, 24.04, 9.4, 10.0.20348

    def to_json(self) -> dict[str, str]:
        return {"family": self.family, "name": self.name, "version": self.version}


class Package(NamedTuple):
    """One installed package: dpkg splits its version into epoch, upstream version and Debian
    revision (`release`); rpm into epoch, version and release. `source` is the source package
    (dpkg: `"inetutils (2:2.4-2+deb12u3)"`, or a bare name when the versions are equal; rpm: the
    source rpm's file name)."""

    name: str
    version: str
    arch: str
    epoch: str | None = None
    release: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "version": self.version, "arch": self.arch}
        for key in ("epoch", "release", "source"):
            value = getattr(self, key)
            if value:
                body[key] = value
        return body


class Update(NamedTuple):
    """A missing update: `id` is what the controller approves (`openssl=3.0.15-1~deb12u1`,
    `RHSA-2026:1234`, `KB5044284`)."""

    id: str
    title: str | None = None
    classification: str | None = None
    severity: str | None = None
    kb: str | None = None
    cves: tuple[str, ...] = ()
    size_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id}
        for key, name in (
            ("title", "title"),
            ("classification", "classification"),
            ("severity", "severity"),
            ("kb", "kb"),
            ("size_bytes", "sizeBytes"),
        ):
            value = getattr(self, key)
            if value is not None:
                body[name] = value
        if self.cves:
            body["cves"] = list(self.cves)
        return body


class PatchResult(NamedTuple):
    id: str
    result: str  # installed | failed | skipped | not-applicable
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "result": self.result}
        if self.reason:
            body["reason"] = self.reason[:2000]
        return body


class Inventory(NamedTuple):
    """The package inventory; `module_streams` the enabled module streams (`php:7.4`, RHEL
    family), None when the backend cannot tell (the controller then reads release markers)."""

    packages: tuple[Package, ...] = ()
    kernel: str | None = None
    os_build: str | None = None
    module_streams: tuple[str, ...] | None = None
    windows: dict[str, Any] | None = None  # Windows: registry values naming the OS

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"packages": [p.to_json() for p in self.packages]}
        if self.kernel:
            body["kernel"] = self.kernel
        if self.os_build:
            body["osBuild"] = self.os_build
        if self.module_streams is not None:
            body["moduleStreams"] = list(self.module_streams)
        if self.windows:
            body["windows"] = dict(self.windows)
        return body


class Outcome(NamedTuple):
    """What a download or an install did: per-patch results (install only) and the output."""

    ok: bool
    output: str
    results: tuple[PatchResult, ...] = ()
    reason: str | None = None  # why it failed as a whole, in one line


class ScanResult(NamedTuple):
    missing: tuple[Update, ...]
    installed: tuple[str, ...]  # patch ids the OS says are installed (Windows KBs)
    reboot_required: bool
    inventory: Inventory | None
    facts: dict[str, Any] = {}  # noqa: RUF012 - never mutated


class BackendError(Exception):
    """The package manager could not answer (not installed, database locked, broken output)."""


class Backend(abc.ABC):
    """One OS's package manager, seen from the agent."""

    name = "backend"

    @abc.abstractmethod
    def os_info(self) -> OsInfo:
        """The OS family, name and version the agent reports."""

    @abc.abstractmethod
    def machine_id(self) -> str | None:
        """A stable identity of this machine (`/etc/machine-id`, Windows `MachineGuid`)."""

    @abc.abstractmethod
    def inventory(self) -> Inventory | None:
        """The installed packages (None where the controller does not use them)."""

    @abc.abstractmethod
    def missing_updates(self) -> list[Update]:
        """Updates the OS's own tools say are available and not installed."""

    def installed_patches(self) -> list[str]:
        """Patch ids the OS lists as installed (Windows KBs); Linux reports packages instead."""
        return []

    @abc.abstractmethod
    def reboot_pending(self) -> bool:
        """The OS's own signal that a reboot is required."""

    def facts(self) -> dict[str, Any]:
        """Extra facts for the report's `facts.custom` (e.g. the Windows update source)."""
        return {}

    def refresh(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Bring the package manager's view of available updates up to date (apt's lists);
        default: the tool refreshes by itself."""

    def download(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        """Fetch the approved updates without installing them (default: nothing to do)."""
        del patch_ids, timeout
        return Outcome(ok=True, output="")

    @abc.abstractmethod
    def install(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        """Install exactly `patch_ids`, one result per id."""

    def scan(self) -> ScanResult:
        """Everything a scan report carries."""
        return ScanResult(
            missing=tuple(self.missing_updates()),
            installed=tuple(self.installed_patches()),
            reboot_required=self.reboot_pending(),
            inventory=self.inventory(),
            facts=self.facts(),
        )


def read_os_release(path: Path) -> dict[str, str]:
    """The KEY=value pairs of an os-release file (quotes removed); empty when it is missing."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def read_machine_id(root: Path) -> str | None:
    """systemd's machine id (`/etc/machine-id`, else D-Bus's copy); None when there is none."""
    for path in (root / "etc" / "machine-id", root / "var" / "lib" / "dbus" / "machine-id"):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-f]{32}", value):
            return value
    return None


NAMES = ("auto", "apt", "dnf", "yum", "wua")  # what `backend =` and --backend take


def detect(name: str = "auto") -> Backend:
    """The backend for this host: `name` forces one (apt, dnf, yum, wua); `auto` picks by what
    the host has. Raises BackendError when none fits."""
    if name == "auto":
        if sys.platform == "win32":
            name = "wua"
        elif procs.which("dpkg-query") and procs.which("apt-get"):
            name = "apt"
        elif procs.which("dnf"):
            name = "dnf"
        elif procs.which("yum"):
            name = "yum"
        else:
            raise BackendError(
                f"no supported package manager on this host ({platform.platform()}): "
                "need apt (Debian/Ubuntu), dnf/yum (RHEL family) or Windows Update"
            )
    if name == "apt":
        from patchctl_agent.backends import apt  # noqa: PLC0415 - only the chosen backend loads

        return apt.AptBackend()
    if name in ("dnf", "yum"):
        from patchctl_agent.backends import dnf  # noqa: PLC0415

        return dnf.DnfBackend(tool=name)
    if name == "wua":
        from patchctl_agent.backends import wua  # noqa: PLC0415

        return wua.WuaBackend()
    raise BackendError(f"unknown backend {name!r}: expected one of {', '.join(NAMES)}")
