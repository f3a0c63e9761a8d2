"""The dnf/yum backend (RHEL, AlmaLinux, Rocky, Fedora): rpm's inventory, dnf's advisories.

- Inventory: `rpm -qa` (name, epoch, version, release, arch, source rpm) and the enabled module
  streams as `inventory.moduleStreams` (`php:7.4`): read from dnf's own state files
  `/etc/dnf/modules.d/*.module` (`state=enabled`), else from `dnf module list --enabled`; not
  reported when neither answers (yum on RHEL 7 has no modules).
- Missing updates: the advisories of `dnf updateinfo list --updates` (id, type, severity), and
  `name=epoch:version-release` for package updates no advisory covers (`dnf check-update`).
- Pending reboot: `dnf needs-restarting -r` (yum: `needs-restarting -r`) exits 1.
- Install: `dnf upgrade --advisory=ID` for approved advisories and `name-[epoch:]version-release`
  for approved package updates, in one transaction; each id's result is read back afterwards
  (an advisory is installed when dnf no longer lists it as an update, a package when rpm has
  that version).

`options` are added to every dnf call and `rpm_options` to every rpm call; the tests use them
for `--installroot` (the agent on a host passes none).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from patchctl_agent import procs
from patchctl_agent.backends import (
    FAILED,
    INSTALLED,
    NOT_APPLICABLE,
    Backend,
    BackendError,
    Inventory,
    OsInfo,
    Outcome,
    Package,
    PatchResult,
    Update,
    read_machine_id,
    read_os_release,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

RPM_FORMAT = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\n"
ADVISORY = re.compile(r"^[A-Z][A-Z0-9]*-\d{4}:\d+$")  # RHSA-2026:1234, ALSA-2026:57149, FEDORA-…
ENV = {"LC_ALL": "C"}
TYPES = {"Sec.": "security", "bugfix": "bugfix", "enhancement": "enhancement"}
SEVERITIES = {
    "Critical": "critical",
    "Important": "important",
    "Moderate": "moderate",
    "Low": "low",
}


class AdvisoryLine(NamedTuple):
    advisory: str
    kind: str  # security | bugfix | enhancement | unknown
    severity: str | None
    nevra: str


class DnfBackend(Backend):
    name = "dnf"

    def __init__(
        self,
        *,
        tool: str = "dnf",
        runner: procs.Runner = procs.run,
        root: Path = Path("/"),
        options: Sequence[str] = (),
        rpm_options: Sequence[str] = (),
    ) -> None:
        self.tool = tool
        self.name = tool
        self.run = runner
        self.root = root
        self.options = list(options)
        self.rpm_options = list(rpm_options)

    def os_info(self) -> OsInfo:
        release = read_os_release(self.root / "etc" / "os-release")
        return OsInfo("linux", release.get("NAME", "Linux"), release.get("VERSION_ID", "unknown"))

    def machine_id(self) -> str | None:
        return read_machine_id(self.root)

    def inventory(self) -> Inventory:
        done = self._checked(["rpm", *self.rpm_options, "-qa", "--qf", RPM_FORMAT], what="rpm -qa")
        return Inventory(
            packages=tuple(parse_rpm_qa(done.output)), module_streams=self.module_streams()
        )

    def module_streams(self) -> tuple[str, ...] | None:
        """The enabled `name:stream`s, sorted; None when the host cannot say."""
        folder = self.root / "etc" / "dnf" / "modules.d"
        if folder.is_dir():
            return tuple(sorted(read_module_files(folder)))
        done = self.run(self._dnf("module", "list", "--enabled", "-q"), timeout=300, env=ENV)
        return tuple(sorted(parse_module_list(done.output))) if done.code == 0 else None

    def missing_updates(self) -> list[Update]:
        listed = self._checked(
            self._dnf("updateinfo", "list", "--updates", "-q"), what="dnf updateinfo"
        )
        advisories = parse_updateinfo_list(listed.output)
        covered = {line.nevra for line in advisories}
        check = self.run(self._dnf("check-update", "-q"), timeout=600, env=ENV)
        if check.code not in (0, 100):  # 100: updates available
            raise BackendError(f"{self.tool} check-update failed (exit {check.code})")
        updates: dict[str, Update] = {}
        for line in advisories:
            updates.setdefault(
                line.advisory,
                Update(
                    line.advisory,
                    title=line.advisory,
                    classification=line.kind,
                    severity=line.severity,
                ),
            )
        for name, arch, evr in parse_check_update(check.output):
            if f"{name}-{evr}.{arch}" not in covered:
                patch_id = f"{name}={evr}"
                updates.setdefault(patch_id, Update(patch_id, title=f"{name} {evr}"))
        return [updates[key] for key in sorted(updates)]

    def reboot_pending(self) -> bool:
        args = (
            self._dnf("needs-restarting", "-r")
            if self.tool == "dnf"
            else ["needs-restarting", "-r"]
        )
        done = self.run(args, timeout=300, env=ENV)
        # exit 1 is also how it fails (no /proc, plugin missing): only its sentence counts
        return done.code == 1 and "Reboot is required" in done.output

    def download(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        commands, _ = self._commands(patch_ids, "--downloadonly")
        if not commands:
            return Outcome(ok=True, output="nothing to download")
        done = [self.run(args, timeout=timeout, env=ENV) for args in commands]
        failed = [d for d in done if d.code != 0]
        return Outcome(
            ok=not failed,
            output="\n".join(d.output for d in done),
            reason=dnf_failure(failed[0]) if failed else None,
        )

    def install(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        commands, early = self._commands(patch_ids)
        if not commands:
            return Outcome(ok=True, output="nothing to install", results=tuple(early.values()))
        done = [self.run(args, timeout=timeout, env=ENV) for args in commands]
        failed = [d for d in done if d.code != 0]
        reason = dnf_failure(failed[0]) if failed else None
        output = "\n".join(d.output for d in done)
        still = parse_updateinfo_list(
            self.run(
                self._dnf("updateinfo", "list", "--updates", "-q"), timeout=600, env=ENV
            ).output
        )
        pending = {line.advisory for line in still}
        installed = {p.name: full_evr(p) for p in self._inventory_now()}
        results = dict(early)
        for patch_id in patch_ids:
            if patch_id in results:
                continue
            if ADVISORY.match(patch_id):
                ok = patch_id not in pending
            else:
                name, _, evr = patch_id.partition("=")
                ok = same_evr(installed.get(name), evr)
            why = package_failure(output, patch_id) or reason or f"{self.tool} did not install it"
            results[patch_id] = (
                PatchResult(patch_id, INSTALLED) if ok else PatchResult(patch_id, FAILED, why)
            )
        ordered = tuple(results[p] for p in patch_ids)
        return Outcome(
            ok=all(r.result != FAILED for r in ordered),
            output=output,
            results=ordered,
            reason=reason,
        )

    def _commands(
        self, patch_ids: Sequence[str], *flags: str
    ) -> tuple[list[list[str]], dict[str, PatchResult]]:
        """The dnf commands for the approved ids, and the ids answered without dnf.

        Advisories and packages take two transactions: given package arguments, dnf applies
        `--advisory` to those packages only (dnf 4.14 answered "Nothing to do").
        """
        advisories: list[str] = []
        packages: list[str] = []
        early: dict[str, PatchResult] = {}
        for patch_id in patch_ids:
            if ADVISORY.match(patch_id):
                advisories.append(f"--advisory={patch_id}")
            elif "=" in patch_id:
                name, _, evr = patch_id.partition("=")
                packages.append(f"{name}-{evr}")
            else:
                early[patch_id] = PatchResult(
                    patch_id, NOT_APPLICABLE, "neither an advisory id nor name=version"
                )
        commands = [
            self._dnf("-y", "upgrade", *flags, *args) for args in (advisories, packages) if args
        ]
        return commands, early

    def _inventory_now(self) -> list[Package]:
        done = self._checked(["rpm", *self.rpm_options, "-qa", "--qf", RPM_FORMAT], what="rpm -qa")
        return parse_rpm_qa(done.output)

    def _dnf(self, *args: str) -> list[str]:
        return [self.tool, *self.options, *args]

    def _checked(self, args: list[str], *, what: str) -> procs.Completed:
        done = self.run(args, timeout=600, env=ENV)
        if done.code != 0:
            last = done.output.strip().splitlines()[-1:] or ["no output"]
            raise BackendError(f"{what} failed (exit {done.code}): {last[0]}")
        return done


# --- parsing (pure) ------------------------------------------------------------------------


def parse_rpm_qa(text: str) -> list[Package]:
    """Packages of `rpm -qa --qf RPM_FORMAT` (the gpg-pubkey pseudo-packages left out)."""
    packages = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 6 or fields[0] == "gpg-pubkey":
            continue
        name, epoch, version, release, arch, source = fields
        packages.append(
            Package(
                name=name,
                version=version,
                arch=arch,
                epoch=epoch if epoch != "0" else None,
                release=release,
                source=source if source != "(none)" else None,
            )
        )
    return packages


def full_evr(package: Package) -> str:
    evr = f"{package.version}-{package.release}"
    return f"{package.epoch}:{evr}" if package.epoch else evr


def same_evr(installed: str | None, wanted: str) -> bool:
    """Whether `installed` is `wanted`, an epoch of 0 being the same as none."""
    if installed is None:
        return False
    return installed.removeprefix("0:") == wanted.removeprefix("0:")


def parse_updateinfo_list(text: str) -> list[AdvisoryLine]:
    """Lines of `dnf updateinfo list --updates` (dnf 4; yum writes the same columns):
    `RHSA-2026:1234 Important/Sec. openssl-1:3.0.7-27.el9.x86_64`."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 3 or not ADVISORY.match(words[0]):
            continue
        severity, _, kind = words[1].rpartition("/")
        found.append(
            AdvisoryLine(words[0], TYPES.get(kind, "unknown"), SEVERITIES.get(severity), words[2])
        )
    return found


def parse_check_update(text: str) -> list[tuple[str, str, str]]:
    """(name, arch, [epoch:]version-release) of `dnf check-update` lines
    `openssl.x86_64  1:3.0.7-27.el9  baseos`; obsoleting and header lines are skipped."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 3 or line.startswith(" ") or "." not in words[0]:
            continue
        name, _, arch = words[0].rpartition(".")
        if "-" not in words[1]:
            continue
        found.append((name, arch, words[1]))
    return found


def read_module_files(folder: Path) -> list[str]:
    """`name:stream` of every `*.module` file of dnf's module state folder whose state is
    `enabled` (libdnf's ModulePackageContainer writes one INI file per module: `[php]`,
    `name=php`, `stream=7.4`, `profiles=`, `state=enabled`). Unreadable files are skipped."""
    streams = []
    for path in sorted(folder.glob("*.module")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        values = parse_module_file(text)
        if values.get("state") == "enabled" and values.get("name") and values.get("stream"):
            streams.append(f"{values['name']}:{values['stream']}")
    return streams


def parse_module_file(text: str) -> dict[str, str]:
    """The `key=value` lines of one `.module` file (one section), keys lowercased."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";", "[")):
            values[key.strip().lower()] = value.strip()
    return values


def parse_module_list(text: str) -> list[str]:
    """`name:stream` of the enabled streams in `dnf module list --enabled` output."""
    streams = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and "[e]" in line and not line.startswith(("Name", "Hint")):
            streams.append(f"{words[0]}:{words[1]}")
    return streams


def package_failure(output: str, patch_id: str) -> str | None:
    """The line of dnf's output that says why a package failed (`error: %prein(pctl-bad-1.1-1…)
    scriptlet failed`, `Error unpacking rpm package pctl-bad-1.1-1…`), if any."""
    name = patch_id.partition("=")[0]
    for line in output.splitlines():
        text = line.strip()
        if name in text and ("error" in text.lower() or "failed" in text.lower()):
            return text[:500]
    return None


def dnf_failure(done: procs.Completed) -> str:
    """One line saying why dnf failed."""
    if done.timed_out:
        return "dnf timed out"
    errors = [
        line.strip()
        for line in done.output.splitlines()
        if line.startswith(("Error:", "Error unpacking", "  Running scriptlet", "error:"))
    ]
    return errors[-1][:500] if errors else f"dnf exited {done.code}"
