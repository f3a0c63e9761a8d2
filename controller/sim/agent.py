"""One simulated agent: enrols, reports, polls and runs jobs over the public HTTP protocol only.

It is the reference for real agents: every call, header and body here is what an agent sends.
Behaviour is random but reproducible: each agent draws from its own generator seeded by the
fleet seed and its index, and reads time from the clock it is given.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from controller import errors
from controller.sim import patches as sim_patches

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.sim.clock import Clock
    from controller.sim.fleet import DeviceProfile

AGENT_VERSION = "patchctl-sim/1.0"

WINDOWS_FAILURES = (
    "0x80070643: fatal error during installation",
    "0x800f0922: the update could not be installed (servicing stack)",
    "0x80240022: download failed (WU_E_ALL_UPDATES_FAILED)",
    "0x80070070: there is not enough space on the disk",
)
LINUX_FAILURES = (
    "dpkg: error processing package (--configure): post-installation script returned 1",
    "Transaction check error: file conflicts between attempted installs",
    "Failed to fetch package: 404 Not Found",
    "E: Could not get lock /var/lib/dpkg/lock-frontend",
)
# Binaries built from a source of another name (dpkg's `Source:` field), for Debian and Ubuntu.
_DPKG_SOURCES = {
    "libssl3": "openssl",
    "libcurl4": "curl",
    "openssh-server": "openssh",
    "libc6": "glibc",
    "zlib1g": "zlib",
    "python3": "python3-defaults",
    "postgresql-15": "postgresql-15",
}
LINUX_PACKAGES = (
    "openssl",
    "libssl3",
    "bash",
    "coreutils",
    "curl",
    "libcurl4",
    "openssh-server",
    "sudo",
    "systemd",
    "tzdata",
    "ca-certificates",
    "gnupg",
    "python3",
    "nginx",
    "postgresql-15",
    "libc6",
    "zlib1g",
    "libxml2",
    "git",
    "vim",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How simulated devices behave; times are in simulated seconds."""

    failure_rate: float = 0.1  # per patch install
    offline_rate: float = 0.01  # per poll cycle: the device goes dark for a while
    offline_seconds: tuple[float, float] = (300.0, 3600.0)
    scan_every: float = 6 * 3600.0
    facts_every: int = 10  # full facts in every Nth report
    bandwidth_bytes_per_second: float = 20e6
    install_seconds: tuple[float, float] = (20.0, 120.0)
    reboot_seconds: tuple[float, float] = (60.0, 240.0)
    ramp_up: float = 10.0  # agents start spread over this many seconds
    missing_range: tuple[int, int] = (3, 40)

    def __post_init__(self) -> None:
        for name in ("failure_rate", "offline_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass
class Stats:
    """What the fleet did; summed over agents."""

    enrolled: int = 0
    reports: int = 0
    scans: int = 0
    polls: int = 0
    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    patches_installed: int = 0
    patches_failed: int = 0
    reboots: int = 0
    offline_periods: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "reports": self.reports,
            "scans": self.scans,
            "polls": self.polls,
            "jobs": self.jobs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "patchesInstalled": self.patches_installed,
            "patchesFailed": self.patches_failed,
            "reboots": self.reboots,
            "offlinePeriods": self.offline_periods,
            "errors": dict(sorted(self.errors.items())),
        }


class AgentError(errors.TransientError):
    """A call the agent could not complete; counted, then retried on the next cycle."""


class Agent:
    """A simulated device's agent."""

    def __init__(  # noqa: PLR0913 - the agent's whole context, all keyword-only
        self,
        *,
        profile: DeviceProfile,
        enrollment_token: str,
        catalogue: list[sim_patches.SimPatch],
        client: httpx.AsyncClient,
        clock: Clock,
        behaviour: Behaviour,
        stats: Stats,
        seed: int,
    ) -> None:
        self.profile = profile
        self.client = client
        self.clock = clock
        self.behaviour = behaviour
        self.stats = stats
        self.rng = random.Random(f"{seed}:agent:{profile.index}")  # noqa: S311 - simulation
        self._enrollment_token = enrollment_token
        self.device_id: str | None = None
        self._token: str | None = None
        self.poll_interval = 60.0
        self.reports_sent = 0
        self.last_scan_at: float | None = None  # simulated epoch seconds
        self.booted_at = clock.stamp()  # reported: the service's time (`Clock.stamp`)
        self.reboot_pending = False
        self._seq = 0
        applicable = sim_patches.applicable(
            catalogue,
            os_family=profile.os_family,
            os_name=profile.os_name,
            os_version=profile.os_version,
        )
        self.known = {p.id: p for p in applicable}
        low, high = behaviour.missing_range
        count = min(len(applicable), self.rng.randint(low, high))
        chosen = self.rng.sample(applicable, count) if count else []
        self.missing: dict[str, sim_patches.SimPatch] = {p.id: p for p in chosen}
        rest = [p for p in applicable if p.id not in self.missing]
        self.installed: dict[str, str] = {
            p.id: (clock.stamp().replace(microsecond=0)).isoformat()
            for p in self.rng.sample(rest, min(len(rest), self.rng.randint(0, 10)))
        }
        self.packages = self._packages()

    # --- the loop --------------------------------------------------------------------------

    async def run(self, *, once: bool, should_stop: Callable[[], bool]) -> None:
        """Enrol, report, then poll and run jobs until `should_stop()` (or one cycle if once)."""
        await self.clock.sleep(self.rng.uniform(0, self.behaviour.ramp_up))
        while not should_stop() and self.device_id is None:
            if await self._attempt(self.enroll):
                break
            if once:
                return
            await self.clock.sleep(min(self.poll_interval, 30.0))
        await self._attempt(lambda: self.report(scan=True))
        while not should_stop():
            await self._attempt(self.poll_and_run)
            if once:
                return
            if self.rng.random() < self.behaviour.offline_rate:
                self.stats.offline_periods += 1
                await self.clock.sleep(self.rng.uniform(*self.behaviour.offline_seconds))
            await self._attempt(self._report_if_due)
            await self.clock.sleep(self.poll_interval * self.rng.uniform(0.9, 1.1))

    async def _report_if_due(self) -> None:
        await self.report(scan=self._scan_due())

    async def _attempt(self, action: Callable[[], Any]) -> bool:
        try:
            await action()
        except (httpx.HTTPError, AgentError) as exc:
            self.stats.error(type(exc).__name__ if isinstance(exc, httpx.HTTPError) else str(exc))
            return False
        return True

    # --- protocol calls --------------------------------------------------------------------

    async def enroll(self) -> None:
        body = {
            "enrollmentToken": self._enrollment_token,
            "hostname": self.profile.hostname,
            "os": {
                "family": self.profile.os_family,
                "name": self.profile.os_name,
                "version": self.profile.os_version,
            },
            "agentVersion": AGENT_VERSION,
            "role": self.profile.role,
            "labels": self.profile.labels,
        }
        answer = await self._call("POST", "/api/v1/enroll", json=body, auth=False)
        self.device_id = str(answer["deviceId"])
        self._token = str(answer["deviceToken"])
        self.poll_interval = float(answer.get("pollInterval", 60))
        self.stats.enrolled += 1

    async def report(self, *, scan: bool) -> None:
        body: dict[str, Any] = {}
        if self.reports_sent % self.behaviour.facts_every == 0:
            body["facts"] = self.facts()
        if scan:
            body["scan"] = self.scan()
            if self.profile.os_family == "linux":
                body["inventory"] = {"kernel": self._kernel(), "packages": self.packages}
            elif (windows := self.profile.windows()) is not None:
                body["inventory"] = {"osBuild": self.profile.os_build, "windows": windows}
        await self._call("POST", f"/api/v1/devices/{self.device_id}/report", json=body)
        self.reports_sent += 1
        self.stats.reports += 1
        if scan:
            self.stats.scans += 1
            self.last_scan_at = self.clock.now().timestamp()

    async def poll_and_run(self) -> None:
        answer = await self._call("GET", f"/api/v1/devices/{self.device_id}/jobs")
        self.stats.polls += 1
        poll = answer.get("pollInterval")
        if isinstance(poll, int | float) and poll > 0:
            self.poll_interval = float(poll)
        for job in answer.get("jobs", []):
            await self.run_job(job)

    async def event(self, job_id: str, state: str, **extra: Any) -> None:
        self._seq += 1
        body = {"state": state, "seq": self._seq} | extra
        await self._call("POST", f"/api/v1/jobs/{job_id}/events", json=body)

    async def _call(
        self, method: str, path: str, *, json: Any = None, auth: bool = True
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        response = await self.client.request(method, path, json=json, headers=headers)
        if response.status_code == 401 and auth:
            self.device_id = None  # the token was revoked: enrol again
            await self.enroll()
            raise AgentError("re-enrolled")
        if response.status_code >= 400:
            raise AgentError(f"http-{response.status_code}")
        answer: dict[str, Any] = response.json()
        return answer

    # --- running jobs ----------------------------------------------------------------------

    async def run_job(self, job: dict[str, Any]) -> None:
        self.stats.jobs += 1
        job_id = str(job["id"])
        await self.event(job_id, "acked")
        kind = job.get("kind")
        if kind == "install":
            await self._install(job_id, job)
        elif kind == "script":
            await self._script(job_id, job)
        else:
            await self.report(scan=True)
            await self.event(job_id, "succeeded", output="scan reported")
            self.stats.succeeded += 1

    async def _install(self, job_id: str, job: dict[str, Any]) -> None:
        wanted = [str(p) for p in job.get("patches", [])]
        present = [self.missing[p] for p in wanted if p in self.missing]
        size = sum(p.size_bytes for p in present)
        await self.event(job_id, "downloading")
        await self.clock.sleep(size / self.behaviour.bandwidth_bytes_per_second)
        await self.event(job_id, "installing")
        results: list[dict[str, Any]] = []
        lines: list[str] = []
        for patch_id in wanted:
            patch = self.missing.get(patch_id)
            if patch is None:
                state = "skipped" if patch_id in self.installed else "not-applicable"
                results.append({"id": patch_id, "result": state})
                continue
            await self.clock.sleep(self.rng.uniform(*self.behaviour.install_seconds))
            if self.rng.random() < self.behaviour.failure_rate:
                reason = self.rng.choice(
                    WINDOWS_FAILURES if self.profile.os_family == "windows" else LINUX_FAILURES
                )
                results.append({"id": patch_id, "result": "failed", "reason": reason})
                lines.append(f"{patch_id}: FAILED: {reason}")
                self.stats.patches_failed += 1
                continue
            del self.missing[patch_id]
            self.installed[patch_id] = self.clock.stamp().replace(microsecond=0).isoformat()
            self.reboot_pending = self.reboot_pending or patch.reboot_required
            results.append({"id": patch_id, "result": "installed"})
            lines.append(f"{patch_id}: installed")
            self.stats.patches_installed += 1
        reboot = job.get("reboot") or "if-required"
        if reboot == "always" or (reboot == "if-required" and self.reboot_pending):
            await self.event(job_id, "rebooting", rebootRequired=self.reboot_pending)
            await self.clock.sleep(self.rng.uniform(*self.behaviour.reboot_seconds))
            self.reboot_pending = False
            self.booted_at = self.clock.stamp()
            self.stats.reboots += 1
            lines.append("rebooted")
        failed = any(r["result"] == "failed" for r in results)
        await self.event(
            job_id,
            "failed" if failed else "succeeded",
            patches=results,
            rebootRequired=self.reboot_pending,
            output="\n".join(lines),
        )
        self.stats.failed += failed
        self.stats.succeeded += not failed
        await self.report(scan=True)  # agents re-detect after installing

    async def _script(self, job_id: str, job: dict[str, Any]) -> None:
        await self.event(job_id, "installing")
        await self.clock.sleep(self.rng.uniform(5.0, 60.0))
        failed = self.rng.random() < self.behaviour.failure_rate
        code = 1 if failed else 0
        name = (job.get("payload") or {}).get("script", {}).get("name", "script")
        await self.event(
            job_id, "failed" if failed else "succeeded", output=f"{name}: exit code {code}"
        )
        self.stats.failed += failed
        self.stats.succeeded += not failed

    # --- what the device knows about itself ------------------------------------------------

    def facts(self) -> dict[str, Any]:
        now = self.clock.stamp()
        return {
            "hostname": self.profile.hostname,
            "os": {
                "family": self.profile.os_family,
                "name": self.profile.os_name,
                "version": self.profile.os_version,
            },
            "role": self.profile.role,
            "labels": self.profile.labels,
            "agentVersion": AGENT_VERSION,
            "uptime": int((now - self.booted_at).total_seconds()),
            "lastBootAt": self.booted_at.isoformat(),
            "kernel": self._kernel(),
            **({"osBuild": self.profile.os_build} if self.profile.os_build else {}),
            "manufacturer": "patchctl-sim",
            "ipAddresses": [self._address()],
        }

    def scan(self) -> dict[str, Any]:
        return {
            "scannedAt": self.clock.stamp().isoformat(),
            "rebootRequired": self.reboot_pending,
            "missing": [
                {
                    "id": p.id,
                    "title": p.title,
                    "classification": p.classification,
                    "severity": p.severity,
                    "sizeBytes": p.size_bytes,
                }
                for p in sorted(self.missing.values(), key=lambda p: p.id)
            ],
            "installed": [
                {"id": patch_id, "installedAt": at}
                for patch_id, at in sorted(self.installed.items())
            ],
        }

    def _address(self) -> str:
        index = self.profile.index
        return f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"

    def _scan_due(self) -> bool:
        if self.last_scan_at is None:
            return True
        return self.clock.now().timestamp() - self.last_scan_at >= self.behaviour.scan_every

    def _kernel(self) -> str:
        if self.profile.os_family == "windows":
            return self.profile.os_version
        name = self.profile.os_name.lower()
        if "ubuntu" in name:
            return "6.8.0-45-generic"
        return "6.1.0-26-amd64" if "debian" in name else "5.14.0-427.13.1.el9_4.x86_64"

    def _packages(self) -> list[dict[str, Any]]:
        if self.profile.os_family != "linux":
            return []
        dpkg = _is_dpkg(self.profile.os_name)
        arch = "amd64" if dpkg else "x86_64"
        found: list[dict[str, Any]] = []
        for i, name in enumerate(LINUX_PACKAGES):
            version = f"{1 + i % 4}.{self.rng.randint(0, 20)}.{i}"
            package = {"name": name, "version": version, "arch": arch}
            if dpkg and name in _DPKG_SOURCES:
                # As dpkg prints `${source:Package}`: a bare name, built at the binary's version.
                package["source"] = _DPKG_SOURCES[name]
            found.append(package)
        return found + self._kernel_packages(dpkg=dpkg, arch=arch)

    def _kernel_packages(self, *, dpkg: bool, arch: str) -> list[dict[str, Any]]:
        """The running kernel and the one before it, installed side by side as real hosts keep
        them: an older install-only version must not count as missing anything."""
        running = self._kernel()
        if "ubuntu" in self.profile.os_name.lower():
            return [
                {"name": "linux-image-6.8.0-41-generic", "version": "6.8.0-41.41", "arch": arch},
                {"name": f"linux-image-{running}", "version": "6.8.0-45.45", "arch": arch},
            ]
        if dpkg:
            signed = "linux-signed-amd64"
            return [
                {
                    "name": "linux-image-6.1.0-25-amd64",
                    "version": "6.1.106-3",
                    "arch": arch,
                    "source": f"{signed} (6.1.106+3)",
                },
                {
                    "name": f"linux-image-{running}",
                    "version": "6.1.112-1",
                    "arch": arch,
                    "source": f"{signed} (6.1.112+1)",
                },
            ]
        version, release = running.removesuffix(f".{arch}").split("-", 1)
        older = "362.8.1.el9_3"
        return [
            {"name": "kernel-core", "version": version, "release": older, "arch": arch},
            {"name": "kernel-core", "version": version, "release": release, "arch": arch},
        ]


def _is_dpkg(os_name: str) -> bool:
    name = os_name.lower()
    return "debian" in name or "ubuntu" in name
