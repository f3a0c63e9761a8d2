"""The Windows Update Agent backend against a fake of WUA's documented COM object model
(IUpdateSession, IUpdateSearcher, IUpdateCollection, IUpdate, IUpdateInstaller,
IInstallationResult) and a fake registry: this machine has no Windows."""

from __future__ import annotations

from typing import Any

import pytest

from patchctl_agent.backends import FAILED, INSTALLED, NOT_APPLICABLE, PatchResult, wua


class Collection:
    """IUpdateCollection / IStringCollection / ICategoryCollection: Count, Item(i), Add."""

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items = list(items or [])

    @property
    def Count(self) -> int:  # noqa: N802 - COM property names
        return len(self.items)

    def Item(self, index: int) -> Any:  # noqa: N802
        return self.items[index]

    def Add(self, item: Any) -> int:  # noqa: N802
        self.items.append(item)
        return len(self.items) - 1


class Category:
    def __init__(self, name: str) -> None:
        self.Name = name


class FakeUpdate:
    """IUpdate: the properties the backend reads."""

    def __init__(
        self,
        kb: str,
        title: str,
        *,
        category: str,
        severity: str | None,
        installed: bool = False,
        fails: int | None = None,
    ) -> None:
        self.KBArticleIDs = Collection([kb])
        self.Title = title
        self.Categories = Collection([Category(category)])
        self.MsrcSeverity = severity
        self.MaxDownloadSize = 1024
        self.EulaAccepted = False
        self.installed = installed
        self.fails = fails  # an HRESULT when its install fails

    def AcceptEula(self) -> None:  # noqa: N802
        self.EulaAccepted = True


class Result:
    def __init__(self, code: int, hresult: int = 0, reboot: bool = False) -> None:
        self.ResultCode, self.HResult, self.RebootRequired = code, hresult, reboot
        self.per_update: list[Result] = []

    def GetUpdateResult(self, index: int) -> Result:  # noqa: N802
        return self.per_update[index]


class Machine:
    """IUpdateSession of a machine: searches by IsInstalled, downloads and installs."""

    def __init__(self, updates: list[FakeUpdate]) -> None:
        self.updates = updates
        self.installed_batches: list[list[str]] = []

    def CreateUpdateSearcher(self) -> Any:  # noqa: N802
        machine = self

        class Searcher:
            def Search(self, criteria: str) -> Any:  # noqa: N802
                wanted = "IsInstalled=1" in criteria
                found = [u for u in machine.updates if u.installed == wanted]
                return type("SearchResult", (), {"Updates": Collection(found), "ResultCode": 2})()

        return Searcher()

    def CreateUpdateDownloader(self) -> Any:  # noqa: N802
        return type("Downloader", (), {"Updates": None, "Download": lambda _: Result(2)})()

    def CreateUpdateInstaller(self) -> Any:  # noqa: N802
        machine = self

        class Installer:
            Updates: Collection | None = None

            def Install(self) -> Result:  # noqa: N802
                assert self.Updates is not None
                overall = Result(2, reboot=True)
                machine.installed_batches.append(
                    [u.KBArticleIDs.Item(0) for u in self.Updates.items]
                )
                for update in self.Updates.items:
                    assert update.EulaAccepted
                    if update.fails:
                        overall.ResultCode = 3
                        overall.per_update.append(Result(4, update.fails))
                    else:
                        update.installed = True
                        overall.per_update.append(Result(2))
                return overall

        return Installer()


REGISTRY = {
    (wua.NT, "ProductName"): "Windows Server 2022 Standard",
    (wua.NT, "CurrentBuild"): "20348",
    (wua.NT, "UBR"): 2762,
    (wua.CRYPTOGRAPHY, "MachineGuid"): "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
}


def backend(
    updates: list[FakeUpdate], registry: dict[Any, Any] | None = None, reboot: bool = False
) -> tuple[wua.WuaBackend, Machine]:
    machine = Machine(updates)
    values = REGISTRY | (registry or {})
    found = wua.WuaBackend(
        session=machine,
        system_info=type("SystemInfo", (), {"RebootRequired": reboot})(),
        registry=lambda key, value: values.get((key, value)),
        new_collection=Collection,
    )
    return found, machine


def updates() -> list[FakeUpdate]:
    return [
        FakeUpdate(
            "5044281",
            "2024-10 Cumulative Update for Microsoft server operating system version 21H2 for x64-based Systems (KB5044281)",
            category="Security Updates",
            severity="Critical",
        ),
        FakeUpdate(
            "5043936",
            "2024-10 Servicing Stack Update (KB5043936)",
            category="Critical Updates",
            severity=None,
        ),
        FakeUpdate(
            "890830",
            "Windows Malicious Software Removal Tool x64 - v5.128 (KB890830)",
            category="Update Rollups",
            severity=None,
        ),
        FakeUpdate(
            "5041160",
            "2024-08 Cumulative Update (KB5041160)",
            category="Security Updates",
            severity="Important",
            installed=True,
        ),
    ]


def test_facts_come_from_the_registry() -> None:
    """OS name and build (CurrentBuild.UBR), MachineGuid and the update source."""
    found, _ = backend(updates(), {(wua.WSUS_POLICY, "WUServer"): "https://wsus.example:8531"})
    assert ("Windows Server 2022 Standard", "10.0.20348.2762") == (
        found.os_info().name,
        found.os_info().version,
    )
    assert "3f2504e0-4f89-11d3-9a0c-0305e82c3301" == found.machine_id()
    assert {
        "updateSource": "wsus:https://wsus.example:8531",
        "osBuild": "10.0.20348.2762",
    } == found.facts()


def test_missing_and_installed_updates_are_kbs() -> None:
    """Missing updates are the KBs WUA offers, classified from their category; installed ones
    are the KBs of installed updates."""
    found, _ = backend(updates())
    missing = [(u.id, u.classification, u.severity) for u in found.missing_updates()]
    assert [
        ("KB5043936", "critical", None),
        ("KB5044281", "security", "critical"),
        ("KB890830", "bugfix", None),
    ] == missing
    assert ["KB5041160"] == found.installed_patches()
    assert {"updateSource": "microsoft-update", "osBuild": "10.0.20348.2762"} == found.facts()


def test_only_the_approved_kbs_are_installed_with_per_update_results() -> None:
    """The collection holds exactly the approved KBs; a failed one carries its HRESULT."""
    offered = updates()
    offered[1].fails = 0x800F0922
    found, machine = backend(offered)
    outcome = found.install(["KB5044281", "KB5043936", "KB5099999"], timeout=60)
    expected = (
        PatchResult("KB5044281", INSTALLED),
        PatchResult("KB5043936", FAILED, "failed (HRESULT 0x800F0922)"),
        PatchResult(
            "KB5099999", NOT_APPLICABLE, "Windows Update does not offer it to this machine"
        ),
    )
    assert (False, expected) == (outcome.ok, outcome.results)
    assert [["5044281", "5043936"]] == machine.installed_batches


@pytest.mark.parametrize(
    ("system_info", "registry", "expected"),
    [
        pytest.param(False, {}, False, id="nothing-pending"),
        pytest.param(True, {}, True, id="wua-says-so"),
        pytest.param(
            False, {(wua.REBOOT_KEYS[0], None): True}, True, id="component-based-servicing"
        ),
        pytest.param(False, {(wua.REBOOT_KEYS[1], None): True}, True, id="windows-update-key"),
        pytest.param(
            False,
            {(wua.SESSION_MANAGER, "PendingFileRenameOperations"): ["\\??\\C:\\x"]},
            True,
            id="file-renames",
        ),
    ],
)
def test_pending_reboot_reads_wua_and_the_registry(
    system_info: bool, registry: dict[Any, Any], expected: bool
) -> None:
    """A reboot is pending when WUA or one of the registry's pending-reboot signals says so."""
    found, _ = backend(updates(), registry, reboot=system_info)
    assert expected == found.reboot_pending()


def test_without_a_com_client_the_backend_says_what_is_missing() -> None:
    """Off Windows the backend refuses to start with the reason."""
    with pytest.raises(wua.BackendError, match="runs on Windows only"):
        wua.WuaBackend()


def test_inventory_says_which_windows_product_the_machine_runs() -> None:
    """Registry values name the product, installation type, edition, version and architecture."""
    found, _ = backend(
        updates(),
        {
            (wua.NT, "InstallationType"): "Server Core",
            (wua.NT, "EditionID"): "ServerStandard",
            (wua.NT, "DisplayVersion"): "21H2",
            (wua.SYSTEM_ENVIRONMENT, "PROCESSOR_ARCHITECTURE"): "AMD64",
        },
    )
    assert {
        "osBuild": "10.0.20348.2762",
        "windows": {
            "productName": "Windows Server 2022 Standard",
            "installationType": "Server Core",
            "editionId": "ServerStandard",
            "displayVersion": "21H2",
            "architecture": "AMD64",
        },
    }.items() <= found.inventory().to_json().items()


def test_an_older_build_gives_its_release_id_as_the_version() -> None:
    """Before DisplayVersion existed (1809), ReleaseId names the version."""
    found, _ = backend(updates(), {(wua.NT, "ReleaseId"): "1809"})
    assert {"productName": "Windows Server 2022 Standard", "displayVersion": "1809"} == (
        found.inventory().windows
    )
