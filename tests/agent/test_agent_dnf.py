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


def test_enabled_module_streams_come_from_dnfs_module_state_files(tmp_path) -> None:
    """`state=enabled` files of /etc/dnf/modules.d are the host's streams; others are not."""
    folder = tmp_path / "etc" / "dnf" / "modules.d"
    folder.mkdir(parents=True)
    (folder / "php.module").write_text("[php]\nname=php\nstream=7.4\nprofiles=\nstate=enabled\n")
    (folder / "nodejs.module").write_text(
        "[nodejs]\nname=nodejs\nstream=18\nprofiles=common\nstate=enabled\n"
    )
    (folder / "perl.module").write_text("[perl]\nname=perl\nstream=\nprofiles=\nstate=disabled\n")
    (folder / "notes.txt").write_text("name=x\nstream=1\nstate=enabled\n")
    replay = Replay.of("dnf/scan.json")
    found = dnf.DnfBackend(
        runner=replay, options=OPTIONS, rpm_options=["--root=/srv/root"], root=tmp_path
    )

    inventory = found.inventory()

    assert ("nodejs:18", "php:7.4") == inventory.module_streams
    assert ["nodejs:18", "php:7.4"] == inventory.to_json()["moduleStreams"]
    assert not any("module" in args for args in replay.ran)  # the files answered


def test_without_module_files_dnf_module_list_answers(tmp_path) -> None:
    """No modules.d folder: `dnf module list --enabled` is asked; no enabled stream is `[]`."""
    found, replay = backend("scan")
    found.root = tmp_path

    inventory = found.inventory()

    assert ((), []) == (inventory.module_streams, inventory.to_json()["moduleStreams"])
    assert any(args[-4:] == ["module", "list", "--enabled", "-q"] for args in replay.ran)


def test_module_list_output_names_enabled_streams() -> None:
    """`[e]` marks an enabled stream in `dnf module list --enabled` (also next to `[d]`)."""
    text = (
        "Rocky Linux 8 - AppStream\n"
        "Name      Stream    Profiles                      Summary\n"
        "php       7.4 [e]   common [d], devel, minimal    PHP scripting language\n"
        "nodejs    18 [d][e] common [d], development       Javascript runtime\n"
        "\n"
        "Hint: [d]efault, [e]nabled, [x]disabled, [i]nstalled\n"
    )
    assert ["php:7.4", "nodejs:18"] == dnf.parse_module_list(text)


def test_a_failing_module_list_reports_no_streams(tmp_path) -> None:
    """When dnf cannot list modules the inventory omits `moduleStreams` (the controller falls
    back to release markers) instead of claiming none is enabled."""
    calls = [
        {"args": ["rpm", "-qa", "--qf", dnf.RPM_FORMAT], "code": 0, "output": ""},
        {"args": ["dnf", "module", "list", "--enabled", "-q"], "code": 1, "output": "Error"},
    ]
    found = dnf.DnfBackend(runner=Replay(calls), root=tmp_path)

    inventory = found.inventory()

    assert (None, False) == (inventory.module_streams, "moduleStreams" in inventory.to_json())
