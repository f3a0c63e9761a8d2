"""An Approval that names a Debian advisory installs the package versions it covers."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from controller.core.explain import explain
from controller.core.observed import DeviceView, JobKind, ObservedState
from controller.core.patches import FixedPackage, PatchRecord
from controller.core.plan import plan
from controller.core.planning.policysets import PolicySets
from controller.feeds import read_feed
from controller.kinds.common import Classification, OsFamily
from controller.kinds.feeds import FeedFormat
from controller.testing.fleets import SUNDAY_OPEN, desired, device, scan

FIXTURES = Path(__file__).parent.parent / "feeds" / "fixtures" / "debsecurity"
ADVISORIES = {r.id: r for r in read_feed(FIXTURES, FeedFormat.DEBIAN_SECURITY).records}


def package(name: str, version: str, source: str, source_version: str | None = None) -> PatchRecord:
    return PatchRecord(
        id=f"{name}={version}",
        os=OsFamily.LINUX,
        classification=Classification.SECURITY,
        packages=(
            FixedPackage(
                name, version, "debian:12", "amd64", source, source_version=source_version
            ),
        ),
    )


PACKAGES = {
    r.id: r
    for r in (
        package("openssl", "3.0.15-1~deb12u1", "openssl"),
        package("libssl3", "3.0.15-1~deb12u1", "openssl"),
        package("libssl3", "3.0.16-1~deb12u1", "openssl"),
        package("telnet", "0.17+2.4-2+deb12u4", "inetutils", "2:2.4-2+deb12u4"),
        package("bsdutils", "1:2.38.1-5+deb12u4", "util-linux", "2.38.1-5+deb12u4"),
        package("tzdata", "2026b-0+deb12u1", "tzdata"),
    )
}
CATALOGUE = ADVISORIES | PACKAGES


def approval(*ids: str, expires: str = "2027-01-31") -> str:
    return f"""\
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: debian, tenant: acme/retail}}
spec: {{patches: [{", ".join(ids)}], targets: {{groups: [linux]}}, reason: openssl fix, expires: {expires}}}
"""


def debian(name: str = "deb1") -> DeviceView:
    return replace(device(name, os=OsFamily.LINUX), os_name="Debian GNU/Linux", os_version="12.8")


def observed(missing: tuple[str, ...]) -> tuple[DeviceView, ObservedState]:
    host = debian()
    state = ObservedState(devices=(host,), scans={host.id: scan(*missing)}, catalogue=CATALOGUE)
    return host, state


ALL_MISSING = (
    "DSA-6010-1",
    "DSA-6021-1",
    "libssl3=3.0.15-1~deb12u1",
    "libssl3=3.0.16-1~deb12u1",
    "openssl=3.0.15-1~deb12u1",
    "telnet=0.17+2.4-2+deb12u4",
    "bsdutils=1:2.38.1-5+deb12u4",
    "tzdata=2026b-0+deb12u1",
)


@pytest.mark.parametrize(
    ("approved", "missing", "expected"),
    [
        pytest.param(
            ("DSA-6010-1",),
            ALL_MISSING,
            ("libssl3=3.0.16-1~deb12u1", "openssl=3.0.15-1~deb12u1"),
            id="dsa-brings-newest-pair-of-each-binary",
        ),
        pytest.param(
            ("DSA-6021-1",),
            ALL_MISSING,
            ("telnet=0.17+2.4-2+deb12u4",),
            id="dsa-through-source-version",
        ),
        pytest.param(
            ("DSA-6010-1", "DSA-6021-1", "tzdata=2026b-0+deb12u1"),
            ALL_MISSING,
            (
                "libssl3=3.0.16-1~deb12u1",
                "openssl=3.0.15-1~deb12u1",
                "telnet=0.17+2.4-2+deb12u4",
                "tzdata=2026b-0+deb12u1",
            ),
            id="advisories-and-an-explicit-pair",
        ),
        pytest.param(
            ("DSA-5999-1",),
            ALL_MISSING,
            None,
            id="advisory-the-device-does-not-miss-approves-nothing",
        ),
        pytest.param(
            ("DSA-6010-1",),
            ("DSA-6010-1",),
            None,
            id="no-offered-package-no-job",
        ),
    ],
)
def test_install_jobs_of_approved_advisories(
    approved: tuple[str, ...], missing: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    """Install jobs carry the name=version pairs an approved, missing advisory covers."""
    _host, state = observed(missing)
    result = plan(desired(approval(*approved)), state, now=SUNDAY_OPEN)
    installs = [j.patch_ids for j in result.issue if j.kind is JobKind.INSTALL]
    assert ([expected] if expected else []) == installs


def test_expired_approval_of_an_advisory_approves_nothing() -> None:
    """An expired Approval naming an advisory brings none of its packages."""
    _host, state = observed(ALL_MISSING)
    result = plan(desired(approval("DSA-6010-1", expires="2026-01-01")), state, now=SUNDAY_OPEN)
    assert [] == [j for j in result.issue if j.kind is JobKind.INSTALL]


def test_explain_names_the_advisory_and_its_packages() -> None:
    """explain says which Approval and advisory approve a pair, and what the advisory installs."""
    host, state = observed(ALL_MISSING)
    found = explain(desired(approval("DSA-6010-1")), state, host, now=SUNDAY_OPEN)
    verdicts = {p.patch_id: p.verdict for p in found.patches}
    assert (
        "required by Baseline acme/lin; approved by Approval acme/retail/debian; installed as "
        "libssl3=3.0.16-1~deb12u1, openssl=3.0.15-1~deb12u1: "
        "will be installed now, in PatchWindow acme/weekly (installs start until 2026-11-29 "
        "05:00 Europe/Berlin (04:00Z))"
    ) == verdicts["DSA-6010-1"]
    assert verdicts["openssl=3.0.15-1~deb12u1"].startswith(
        "required by Baseline acme/lin; approved by Approval acme/retail/debian via DSA-6010-1; "
    )
    assert verdicts["telnet=0.17+2.4-2+deb12u4"].startswith(
        "required by Baseline acme/lin; waiting for approval"
    )


def test_ubuntu_usn_installs_its_binaries_pairs() -> None:
    """An approved USN brings the device's missing versions of its binaries, not its id."""
    usn = PatchRecord(
        id="USN-7000-1",
        os=OsFamily.LINUX,
        classification=Classification.SECURITY,
        packages=(
            FixedPackage("libexpat1", "2.6.1-2ubuntu0.1", "ubuntu:24.04", "amd64", "expat"),
            FixedPackage("expat", "2.6.1-2ubuntu0.1", "ubuntu:24.04", "amd64", "expat"),
        ),
    )
    pair = PatchRecord(
        id="libexpat1=2.6.1-2ubuntu0.2",
        os=OsFamily.LINUX,
        packages=(FixedPackage("libexpat1", "2.6.1-2ubuntu0.2", "ubuntu:24.04", "amd64", "expat"),),
    )
    host = device("ubu1", os=OsFamily.LINUX)  # Ubuntu 24.04
    state = ObservedState(
        devices=(host,),
        scans={host.id: scan("USN-7000-1", "libexpat1=2.6.1-2ubuntu0.2")},
        catalogue={usn.id: usn, pair.id: pair},
    )
    result = plan(desired(approval("USN-7000-1")), state, now=SUNDAY_OPEN)
    installs = [j.patch_ids for j in result.issue if j.kind is JobKind.INSTALL]
    assert [("libexpat1=2.6.1-2ubuntu0.2",)] == installs


def test_a_policy_set_triages_each_missing_list_as_a_fresh_one_does() -> None:
    """`PolicySets.triaged` remembers its answer per missing list: asked again (in any order,
    among other lists, with approved advisories grouping packages), it answers what a new
    `PolicySets` computes for that list alone."""
    rng = random.Random(6010)  # noqa: S311 - a reproducible sample, not a secret
    host, state = observed(ALL_MISSING)
    wanted = desired(approval("DSA-6010-1", "DSA-6021-1", "tzdata=2026b-0+deb12u1"))
    sets = PolicySets(wanted, state, today=SUNDAY_OPEN.date())
    lists = [tuple(rng.sample(ALL_MISSING, rng.randint(1, 6))) for _ in range(30)]
    installable_somewhere = False
    for missing in [*lists, *rng.sample(lists, 30)]:
        fresh = PolicySets(wanted, state, today=SUNDAY_OPEN.date())
        expected = fresh.triaged(fresh.applicable(host), missing)
        assert expected == sets.triaged(sets.applicable(host), missing)
        installable_somewhere |= bool(expected[0])
    assert installable_somewhere
