"""The dnf backend against command output recorded from Debian's real dnf 4.14 and rpm 4.18
working on an install root with a local repository of small rpms (`fixtures/dnf/record.py`):
advisories and package updates, per-package results of a partial failure (a failing %pre)."""

from __future__ import annotations

import pytest
from agenthelpers import Replay

from patchctl_agent.backends import FAILED, INSTALLED, NOT_APPLICABLE, Package, PatchResult, dnf

OPTIONS = [
    "--installroot=/srv/root",
    "--releasever=9",
    "--setopt=reposdir=/srv/repos.d",
    "--setopt=cachedir=/srv/cache",
    "--setopt=install_weak_deps=False",
    "--nogpgcheck",
]


def backend(recording: str) -> tuple[dnf.DnfBackend, Replay]:
    replay = Replay.of(f"dnf/{recording}.json")
    return dnf.DnfBackend(runner=replay, options=OPTIONS, rpm_options=["--root=/srv/root"]), replay


def test_missing_updates_are_advisories_and_uncovered_packages() -> None:
    """An advisory's packages are reported as the advisory; other updates as name=version."""
    found = backend("scan")[0].missing_updates()
    expected = [
        ("PCTL-2026:0001", "security", "important"),
        ("pctl-bad=1.1-1", None, None),
        ("pctl-ok=1.1-1", None, None),
    ]
    assert expected == [(u.id, u.classification, u.severity) for u in found]


def test_inventory_is_rpms() -> None:
    """Inventory entries carry rpm's version, release, arch and source rpm (no epoch 0)."""
    packages = backend("scan")[0].inventory().packages
    assert Package("pctl-ok", "1.0", "noarch", None, "1", "pctl-ok-1.0-1.src.rpm") == packages[0]


def test_needs_restarting_failing_is_not_a_reboot_signal() -> None:
    """`needs-restarting -r` exiting 1 because it failed (no /proc) does not mean a reboot."""
    found, _ = backend("scan")
    found.missing_updates()
    found.inventory()
    assert found.reboot_pending() is False


def test_advisories_and_packages_install_in_two_transactions_with_per_package_results() -> None:
    """The advisory installs in its own transaction; pctl-ok installs, pctl-bad's failing %pre
    fails it with rpm's message."""
    found, replay = backend("partial-failure")
    outcome = found.install(["PCTL-2026:0001", "pctl-ok=1.1-1", "pctl-bad=1.1-1"], timeout=60)
    expected = (
        PatchResult("PCTL-2026:0001", INSTALLED),
        PatchResult("pctl-ok=1.1-1", INSTALLED),
        PatchResult(
            "pctl-bad=1.1-1",
            FAILED,
            'error: lua script failed: [string "%prein(pctl-bad-1.1-1.noarch)"]:1: pctl-bad refuses to upgrade',
        ),
    )
    upgrades = [args[len(OPTIONS) + 1 :] for args in replay.ran if "upgrade" in args]
    assert (False, expected) == (outcome.ok, outcome.results)
    assert [
        ["-y", "upgrade", "--advisory=PCTL-2026:0001"],
        ["-y", "upgrade", "pctl-ok-1.1-1", "pctl-bad-1.1-1"],
    ] == upgrades
    assert "Error: Transaction failed" == outcome.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "RHSA-2026:1234 Important/Sec. openssl-1:3.0.7-27.el9.x86_64\n",
            [("RHSA-2026:1234", "security", "important")],
            id="rhsa",
        ),
        pytest.param(
            "ALBA-2026:0001 bugfix tzdata-2026a-1.el9.noarch\n",
            [("ALBA-2026:0001", "bugfix", None)],
            id="bugfix-no-severity",
        ),
        pytest.param("Last metadata expiration check: 0:01:02 ago\n", [], id="chatter"),
    ],
)
def test_parse_updateinfo_list(text: str, expected: list[tuple[str, str, str | None]]) -> None:
    """Advisory lines give id, type and severity; other lines are ignored."""
    assert expected == [(a.advisory, a.kind, a.severity) for a in dnf.parse_updateinfo_list(text)]


def test_an_id_that_is_neither_advisory_nor_package_is_not_applicable() -> None:
    """A Windows KB sent to a dnf host is answered without running dnf."""
    found, replay = backend("scan")
    outcome = found.install(["KB5044284"], timeout=60)
    assert (
        PatchResult("KB5044284", NOT_APPLICABLE, "neither an advisory id nor name=version"),
    ) == outcome.results
    assert [] == replay.ran
