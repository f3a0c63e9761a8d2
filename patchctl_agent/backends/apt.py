"""The apt backend (Debian, Ubuntu): dpkg's inventory, apt's candidate view, `apt-get` installs.

- Inventory: `dpkg-query` (name, epoch, upstream version, Debian revision, arch, and the source
  package as dpkg's `Source` field writes it: `"inetutils (2:2.4-2+deb12u3)"`, or a bare name
  when the source version equals the binary's).
- Missing updates: `apt-cache policy` of every installed package, i.e. apt's own candidate view
  (pins, priorities and the configured suites all count); a candidate from a `-security` suite
  is a security update. The patch id is `name=candidate` (DESIGN.md §1).
- Pending reboot: `/run/reboot-required` (written by Debian's and Ubuntu's package scripts), or a
  running kernel older than the newest installed `linux-image-*` package.
- Install: `apt-get install --only-upgrade` of exactly the approved `name=version` pairs, with
  `DEBIAN_FRONTEND=noninteractive`, the existing configuration files kept, and apt waiting for
  the dpkg lock for `lock_timeout` seconds (`DPkg::Lock::Timeout`, apt >= 1.9). Held packages
  are left alone and reported `skipped`. Each pair's result is read back from dpkg afterwards;
  a failure's reason is the apt/dpkg line that names the package, else apt's last error.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional

from patchctl_agent import procs
from patchctl_agent.backends import (
    FAILED,
    INSTALLED,
    NOT_APPLICABLE,
    SKIPPED,
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

DPKG_FORMAT = (
    "${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}"
    "\\t${db:Status-Abbrev}\\n"
)
APT_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
    "NEEDRESTART_MODE": "l",  # Ubuntu's needrestart: list, never ask or restart services
    "LC_ALL": "C",  # apt and dpkg messages are parsed below
}
DPKG_OPTIONS = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
LOCK_MESSAGES = ("Could not get lock", "Unable to acquire the dpkg frontend lock", "is locked by")


class AptBackend(Backend):
    name = "apt"

    def __init__(
        self,
        *,
        runner: procs.Runner = procs.run,
        root: Path = Path("/"),
        lock_timeout: float = 300.0,
    ) -> None:
        self.run = runner
        self.root = root  # where /etc, /run and /boot are read (tests point it at a folder)
        self.lock_timeout = lock_timeout

    # --- facts --------------------------------------------------------------------------

    def os_info(self) -> OsInfo:
        release = read_os_release(self.root / "etc" / "os-release")
        version = release.get("VERSION_ID", "")
        debian_version = self.root / "etc" / "debian_version"
        if release.get("ID") == "debian" and debian_version.exists():
            version = debian_version.read_text().strip() or version  # 12.15, not just 12
        return OsInfo(
            family="linux", name=release.get("NAME", "Linux"), version=version or "unknown"
        )

    def machine_id(self) -> str | None:
        return read_machine_id(self.root)

    def inventory(self) -> Inventory:
        packages = self._dpkg().packages
        return Inventory(packages=tuple(packages), kernel=platform.release())

    # --- scan ---------------------------------------------------------------------------

    def missing_updates(self) -> list[Update]:
        packages = self._dpkg().packages
        if not packages:
            return []
        native = self._checked(["dpkg", "--print-architecture"], what="dpkg").output.strip()
        names = sorted({policy_name(p, native) for p in packages})
        policy = self._checked(["apt-cache", "policy", *names], what="apt-cache policy")
        return candidate_updates(parse_policy(policy.output))

    def reboot_pending(self) -> bool:
        if (self.root / "run" / "reboot-required").exists():
            return True
        return self._newer_kernel_installed()

    def _newer_kernel_installed(self) -> bool:
        running = platform.release()
        done = self.run(
            ["dpkg-query", "-W", "-f", "${Package}\\t${db:Status-Abbrev}\\n", "linux-image-[0-9]*"],
            timeout=60,
        )
        if done.code != 0:
            return False  # no kernel package (containers, chroots): no signal
        kernels = [
            line.split("\t")[0].removeprefix("linux-image-")
            for line in done.output.splitlines()
            if "\t" in line and line.split("\t")[1][1:2] == "i"
        ]
        if running not in kernels:
            return False  # a kernel not installed from packages: nothing to compare against
        return any(
            self.run(["dpkg", "--compare-versions", kernel, "gt", running], timeout=30).code == 0
            for kernel in kernels
            if kernel != running
        )

    # --- jobs ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """`apt-get update`, so the approved versions are in apt's lists. A failure is not
        fatal here: the download that follows says which version apt cannot find."""
        self.run(
            ["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={int(self.lock_timeout)}", "update"],
            timeout=900,
            env=APT_ENV,
        )

    def download(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        pairs, _ = self._plan(patch_ids)
        if not pairs:
            return Outcome(ok=True, output="nothing to download")
        done = self._apt_get(["install", "--only-upgrade", "--download-only", *pairs], timeout)
        ok = done.code == 0
        return Outcome(ok=ok, output=done.output, reason=None if ok else apt_failure(done))

    def install(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        pairs, early = self._plan(patch_ids)
        if not pairs:
            return Outcome(ok=True, output="nothing to install", results=tuple(early.values()))
        done = self._apt_get(["install", "--only-upgrade", *pairs], timeout)
        after = self._dpkg()
        reason = None if done.code == 0 else apt_failure(done)
        results = dict(early)
        for pair in pairs:
            results[pair] = pair_result(pair, after, output=done.output, reason=reason)
        ordered = tuple(results[p] for p in patch_ids if p in results)
        # The job's outcome is its packages': apt also fails for a broken package it was not
        # asked about (left half-configured earlier), which the output and the reason tell.
        ok = all(r.result != FAILED for r in ordered)
        return Outcome(ok=ok, output=done.output, results=ordered, reason=reason)

    def _plan(self, patch_ids: Sequence[str]) -> tuple[list[str], dict[str, PatchResult]]:
        """The `name=version` pairs to give apt, and the results known before running it."""
        before = self._dpkg()
        installed = before.versions()
        pairs: list[str] = []
        early: dict[str, PatchResult] = {}
        for patch_id in patch_ids:
            name, sep, version = patch_id.partition("=")
            if not sep or not name or not version:
                early[patch_id] = PatchResult(
                    patch_id, NOT_APPLICABLE, "not a package update (expected name=version)"
                )
            elif name not in installed:
                early[patch_id] = PatchResult(patch_id, NOT_APPLICABLE, f"{name} is not installed")
            elif installed[name] == version and name not in before.unconfigured:
                early[patch_id] = PatchResult(
                    patch_id, INSTALLED, f"{name} is already at {version}"
                )
            elif name in before.held:
                early[patch_id] = PatchResult(
                    patch_id, SKIPPED, f"{name} is held (apt-mark hold); left at {installed[name]}"
                )
            else:
                pairs.append(patch_id)
        return pairs, early

    def _dpkg(self) -> DpkgState:
        done = self._checked(["dpkg-query", "-W", "-f", DPKG_FORMAT], what="dpkg-query")
        return parse_dpkg_query(done.output)

    def _apt_get(self, args: list[str], timeout: float) -> procs.Completed:
        return self.run(
            [
                "apt-get",
                "-y",
                "-q",
                "-o",
                f"DPkg::Lock::Timeout={int(self.lock_timeout)}",
                *DPKG_OPTIONS,
                *args,
            ],
            timeout=timeout,
            env=APT_ENV,
        )

    def _checked(self, args: list[str], *, what: str) -> procs.Completed:
        done = self.run(args, timeout=300, env=APT_ENV)
        if done.code != 0:
            last = done.output.strip().splitlines()[-1:] or ["no output"]
            raise BackendError(f"{what} failed (exit {done.code}): {last[0]}")
        return done


# --- parsing (pure) ------------------------------------------------------------------------


def split_version(version: str) -> tuple[str | None, str, str | None]:
    """dpkg's (epoch, upstream, revision): `1:9.2p1-2+deb12u6` → ("1", "9.2p1", "2+deb12u6")."""
    epoch: str | None = None
    rest = version
    if ":" in rest:
        epoch, rest = rest.split(":", 1)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        return epoch, rest, None
    return epoch, upstream, revision


def full_version(package: Package) -> str:
    text = package.version
    if package.release:
        text += f"-{package.release}"
    if package.epoch:
        text = f"{package.epoch}:{text}"
    return text


def source_field(name: str, version: str, source: str, source_version: str) -> str | None:
    """dpkg's `Source` field: None when the source is the package itself at the same version,
    the bare source name when only the name differs, `"src (version)"` otherwise."""
    source = source or name
    source_version = source_version or version
    if source_version != version:
        return f"{source} ({source_version})"
    return None if source == name else source


class DpkgState(NamedTuple):
    """What dpkg says is installed: the packages, and the names of held ones and of those not
    fully configured (an install that failed half-way leaves them `iU`/`iF`)."""

    packages: list[Package]
    held: frozenset[str]
    unconfigured: frozenset[str]

    def versions(self) -> dict[str, str]:
        return {p.name: full_version(p) for p in self.packages}


def parse_dpkg_query(text: str) -> DpkgState:
    """The installed packages of `dpkg-query -W -f DPKG_FORMAT` output.

    Packages that are only configuration files (`rc`) or not installed are left out; unpacked
    and half-configured ones are installed as far as updates go (their version is on disk),
    and named in `unconfigured`.
    """
    packages: list[Package] = []
    held: set[str] = set()
    unconfigured: set[str] = set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 6 or len(fields[5]) < 2:
            continue
        name, version, arch, source, source_version, status = fields[:6]
        if status[1] not in "iUFW":  # installed, unpacked, half-configured, triggers awaited
            continue
        if status[0] == "h":
            held.add(name)
        if status[1] != "i" or status[2:3].strip():  # not installed-ok, or an error flag
            unconfigured.add(name)
        epoch, upstream, revision = split_version(version)
        packages.append(
            Package(
                name=name,
                version=upstream,
                arch=arch,
                epoch=epoch,
                release=revision,
                source=source_field(name, version, source, source_version),
            )
        )
    return DpkgState(packages, frozenset(held), frozenset(unconfigured))


def policy_name(package: Package, native: str) -> str:
    """How `apt-cache policy` names a package: bare for the native arch and `all`."""
    if package.arch in (native, "all"):
        return package.name
    return f"{package.name}:{package.arch}"


# name -> (installed, candidate, the candidate's first source line)
Policy = dict[str, tuple[Optional[str], Optional[str], str]]


def parse_policy(text: str) -> Policy:  # noqa: C901 - one line-oriented scanner
    """Each package's installed and candidate versions and where the candidate comes from,
    from `apt-cache policy NAME...` output."""
    found: Policy = {}
    name = ""
    installed: str | None = None
    candidate: str | None = None
    origin = ""
    in_table = False
    at_candidate = False

    def keep() -> None:
        if name:
            found[name] = (installed, candidate, origin)

    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            keep()
            name, installed, candidate, origin = line.rstrip()[:-1], None, None, ""
            in_table = at_candidate = False
            continue
        stripped = line.strip()
        if stripped.startswith("Installed:"):
            installed = _none(stripped.split(":", 1)[1].strip())
        elif stripped.startswith("Candidate:"):
            candidate = _none(stripped.split(":", 1)[1].strip())
        elif stripped.startswith("Version table:"):
            in_table = True
        elif in_table:
            words = stripped.removeprefix("***").split()
            if line.startswith(("     ", " *** ")) and not line.startswith("        ") and words:
                at_candidate = words[0] == candidate
            elif at_candidate and not origin and words:
                origin = " ".join(words[1:])
    keep()
    return found


def _none(value: str) -> str | None:
    return None if value in ("(none)", "") else value


def candidate_updates(policy: Policy) -> list[Update]:
    """The updates apt would install: candidate set and different from the installed version.

    apt's candidate is never older than the installed version unless pinned so; a pinned
    downgrade is not an update, and the agent cannot compare dpkg versions without dpkg, so a
    candidate that differs is reported only when its origin is an archive (not the status file).
    """
    updates: list[Update] = []
    for name in sorted(policy):
        installed, candidate, origin = policy[name]
        if installed is None or candidate is None or installed == candidate:
            continue
        if not origin or "/dpkg/status" in origin:
            continue
        security = "-security" in origin or "/security" in origin.split(" ")[0]
        bare = name.split(":", 1)[0]
        updates.append(
            Update(
                id=f"{bare}={candidate}",
                title=f"{bare} {candidate}",
                classification="security" if security else "bugfix",
            )
        )
    return updates


def pair_result(pair: str, after: DpkgState, *, output: str, reason: str | None) -> PatchResult:
    """The result of one `name=version` pair, read back from dpkg after apt ran: installed only
    when dpkg has that version fully configured."""
    name, _, version = pair.partition("=")
    found = after.versions().get(name)
    if found == version and name not in after.unconfigured:
        return PatchResult(pair, INSTALLED)
    why = package_failure(output, name)
    if why is None and found == version:
        why = f"{name} {version} is unpacked but not configured"
    if why is None:
        why = reason or f"apt-get exited 0 but {name} is at {found or 'nothing'}"
    return PatchResult(pair, FAILED, why)


def apt_failure(done: procs.Completed) -> str:
    """One line saying why apt-get failed."""
    if done.timed_out:
        return "apt-get timed out"
    if any(message in done.output for message in LOCK_MESSAGES):
        return "dpkg lock busy: another package manager is running (waited for the lock timeout)"
    errors = [line.strip() for line in done.output.splitlines() if line.startswith("E: ")]
    if errors:
        return errors[-1][:500]
    return f"apt-get exited {done.code}"


_DPKG_ERROR = re.compile(r"^dpkg: error processing (?:package|archive) (\S+) \(([^)]*)\):")


def package_failure(output: str, name: str) -> str | None:
    """The reason apt/dpkg gave for `name`, from lines such as
    `dpkg: error processing package foo (--configure):` and the line after it, or
    `E: Version '1.2' for 'foo' was not found`."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = _DPKG_ERROR.match(line)
        if match and match.group(1).split(":", 1)[0] == name:
            detail = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return f"dpkg: error processing {name} ({match.group(2)}): {detail}".strip()
        if line.startswith("E: ") and f"'{name}'" in line:
            return line[3:].strip()
    return None
