"""The apt backend against command output recorded on a real Debian 12 system
(`fixtures/apt/record.py`): scan, held packages, a busy dpkg lock, a failed postinst next to a
good install; and its pure parsers."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Any

import pytest
from agenthelpers import Replay
from required import unavailable

from patchctl_agent import procs
from patchctl_agent.backends import FAILED, INSTALLED, SKIPPED, Package, PatchResult, apt

SECURITY_UPDATES = [
    "apt=2.6.2",
    "libapt-pkg6.0=2.6.2",
    "libexpat1=2.5.0-1+deb12u5",
    "liblzma5=5.4.1-1+deb12u2",
    "libpam-modules=1.5.2-6+deb12u3",
    "libpam-modules-bin=1.5.2-6+deb12u3",
    "libpam-runtime=1.5.2-6+deb12u3",
    "libpam0g=1.5.2-6+deb12u3",
    "libpcre2-8-0=10.42-1+deb12u2",
    "libpython3.11-minimal=3.11.2-6+deb12u9",
    "libssl3=3.0.22-1~deb12u2",
    "libzstd1=1.5.4+dfsg2-5+deb12u1",
    "perl-base=5.36.0-7+deb12u4",
    "python3.11-minimal=3.11.2-6+deb12u9",
    "tzdata=2026f-0+deb12u1",
]


def backend(recording: str) -> tuple[apt.AptBackend, Replay]:
    replay = Replay.of(f"apt/{recording}.json")
    return apt.AptBackend(runner=replay, lock_timeout=3), replay


def test_missing_updates_are_apts_candidates() -> None:
    """Every installed package whose apt candidate differs is missing, as name=candidate, and a
    candidate from bookworm-security is a security update."""
    found = backend("scan")[0].missing_updates()
    assert SECURITY_UPDATES == [u.id for u in found]
    assert {"security"} == {u.classification for u in found}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "bsdutils",
            Package(
                "bsdutils", "2.38.1", "amd64", "1", "5+deb12u3", "util-linux (2.38.1-5+deb12u3)"
            ),
            id="epoch-and-source-version",
        ),
        pytest.param(
            "bash",
            Package("bash", "5.2.15", "amd64", None, "2+b13", "bash (5.2.15-2)"),
            id="binnmu",
        ),
        pytest.param(
            "libssl3",
            Package("libssl3", "3.0.20", "amd64", None, "1~deb12u2", "openssl"),
            id="source-name-only",
        ),
        pytest.param(
            "tzdata", Package("tzdata", "2026b", "all", None, "0+deb12u1", None), id="own-source"
        ),
    ],
)
def test_inventory_is_dpkgs(name: str, expected: Package) -> None:
    """Inventory entries split dpkg's version and carry the source as dpkg's Source field."""
    packages = {p.name: p for p in backend("scan")[0].inventory().packages}
    assert expected == packages[name]


def test_a_failed_postinst_fails_only_its_package() -> None:
    """pctl-bad's postinst fails; pctl-ok is installed all the same; the reason is dpkg's."""
    outcome = backend("partial-failure")[0].install(["pctl-ok=1.1", "pctl-bad=1.1"], timeout=60)
    expected = (
        PatchResult("pctl-ok=1.1", INSTALLED),
        PatchResult(
            "pctl-bad=1.1",
            FAILED,
            "dpkg: error processing pctl-bad (--configure): installed pctl-bad package "
            "post-installation script subprocess returned error exit status 1",
        ),
    )
    assert (False, expected) == (outcome.ok, outcome.results)


def test_held_packages_are_skipped_and_left_out_of_apt() -> None:
    """A held package is skipped with the reason and never handed to apt; the other installs
    (apt's error about an unrelated broken package does not fail it)."""
    found, replay = backend("held")
    outcome = found.install(["tzdata=2026f-0+deb12u1", "liblzma5=5.4.1-1+deb12u2"], timeout=60)
    expected = (
        PatchResult(
            "tzdata=2026f-0+deb12u1",
            SKIPPED,
            "tzdata is held (apt-mark hold); left at 2026b-0+deb12u1",
        ),
        PatchResult("liblzma5=5.4.1-1+deb12u2", INSTALLED),
    )
    apt_call = next(args for args in replay.ran if args[0] == "apt-get")
    assert (True, expected) == (outcome.ok, outcome.results)
    assert ["install", "--only-upgrade", "liblzma5=5.4.1-1+deb12u2"] == apt_call[-3:]
    assert "E: Sub-process /usr/bin/dpkg returned an error code (1)" == outcome.reason


def test_a_busy_dpkg_lock_fails_after_the_lock_timeout() -> None:
    """apt waits for the dpkg lock for lock_timeout seconds, then the package fails with why."""
    found, replay = backend("lock-busy")
    outcome = found.install(["libexpat1=2.5.0-1+deb12u5"], timeout=60)
    reason = "dpkg lock busy: another package manager is running (waited for the lock timeout)"
    assert (PatchResult("libexpat1=2.5.0-1+deb12u5", FAILED, reason),) == outcome.results
    assert "DPkg::Lock::Timeout=3" in next(a for a in replay.ran if a[0] == "apt-get")


def test_unknown_and_current_pairs_are_answered_without_apt() -> None:
    """A pair for a package that is not installed, at its version already, or not name=version
    is answered from dpkg alone."""
    found, replay = backend("scan")
    outcome = found.install(["nosuch=1.0", "tzdata=2026b-0+deb12u1", "KB5044284"], timeout=60)
    assert ["not-applicable", "installed", "not-applicable"] == [r.result for r in outcome.results]
    assert [] == [args for args in replay.ran if args[0] == "apt-get"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param("1:9.2p1-2+deb12u6", ("1", "9.2p1", "2+deb12u6"), id="epoch"),
        pytest.param("2.6.2", (None, "2.6.2", None), id="native"),
        pytest.param("1.5.4+dfsg2-5+deb12u1", (None, "1.5.4+dfsg2", "5+deb12u1"), id="revision"),
        pytest.param("3.0-1-2", (None, "3.0-1", "2"), id="hyphen-in-upstream"),
    ],
)
def test_split_version(version: str, expected: tuple[str | None, str, str | None]) -> None:
    """dpkg versions split at the first colon and the last hyphen."""
    assert expected == apt.split_version(version)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(("tzdata", "2026b-0+deb12u1", "tzdata", "2026b-0+deb12u1"), None, id="itself"),
        pytest.param(("libssl3", "3.0.20-1", "openssl", "3.0.20-1"), "openssl", id="name"),
        pytest.param(("bash", "5.2.15-2+b13", "bash", "5.2.15-2"), "bash (5.2.15-2)", id="binnmu"),
        pytest.param(("x", "1.0", "", ""), None, id="dpkg-left-it-empty"),
    ],
)
def test_source_field(fields: tuple[str, str, str, str], expected: str | None) -> None:
    """The source is written as dpkg's Source field: omitted, bare, or `src (version)`."""
    assert expected == apt.source_field(*fields)


@pytest.mark.parametrize(
    ("code", "output", "expected"),
    [
        pytest.param(None, "", "apt-get timed out", id="timeout"),
        pytest.param(
            100,
            "E: Could not get lock /var/lib/dpkg/lock-frontend.\n",
            "dpkg lock busy: another package manager is running (waited for the lock timeout)",
            id="lock",
        ),
        pytest.param(
            100,
            "E: first\nE: Version '9' for 'tzdata' was not found\n",
            "E: Version '9' for 'tzdata' was not found",
            id="last-error",
        ),
        pytest.param(1, "something odd\n", "apt-get exited 1", id="no-error-line"),
    ],
)
def test_apt_failure(code: int | None, output: str, expected: str) -> None:
    """apt's failure is summed up in one line."""
    assert expected == apt.apt_failure(procs.Completed(("apt-get",), code, output))


def test_policy_without_candidate_is_not_an_update() -> None:
    """A package apt has no candidate for (installed from elsewhere) is not missing anything."""
    text = "local-tool:\n  Installed: 1.0\n  Candidate: (none)\n  Version table:\n *** 1.0 100\n        100 /var/lib/dpkg/status\n"
    assert [] == apt.candidate_updates(apt.parse_policy(text))


def kernels_runner(installed: list[str]) -> Any:
    """dpkg-query answers with these installed kernel packages; `dpkg --compare-versions` is
    the host's real dpkg (a pure comparison)."""

    def run(args: list[str], **kwargs: Any) -> procs.Completed:
        if args[0] == "dpkg-query":
            lines = "".join(f"linux-image-{k}\tii \n" for k in installed)
            return procs.Completed(tuple(args), 0 if installed else 1, lines)
        return procs.run(args, **kwargs)

    return run


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        pytest.param(["{running}", "999.0.0-1-amd64"], True, id="newer-kernel-installed"),
        pytest.param(["{running}"], False, id="running-is-newest"),
        pytest.param(["{running}", "0.1.0-1-amd64"], False, id="only-older-others"),
        pytest.param(["999.0.0-1-amd64"], False, id="running-kernel-not-from-a-package"),
        pytest.param([], False, id="no-kernel-package"),
    ],
)
def test_a_newer_installed_kernel_means_a_reboot(
    tmp_path: Path, installed: list[str], expected: bool
) -> None:
    """A reboot is pending when a kernel package newer than the running kernel is installed."""
    if shutil.which("dpkg") is None:
        unavailable("dpkg is needed to compare versions")
    running = platform.release()
    found = apt.AptBackend(
        root=tmp_path, runner=kernels_runner([k.format(running=running) for k in installed])
    )
    assert expected == found.reboot_pending()


def test_run_reboot_required_means_a_reboot(tmp_path: Path) -> None:
    """Debian's /run/reboot-required flag is the OS's reboot signal; no command is needed."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "reboot-required").write_text("*** System restart required ***\n")
    replay = Replay([])
    assert apt.AptBackend(root=tmp_path, runner=replay).reboot_pending() is True
    assert [] == replay.ran
