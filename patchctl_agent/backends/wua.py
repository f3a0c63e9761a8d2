"""The Windows Update Agent backend, written against WUA's documented COM object model
(`Microsoft.Update.Session`: IUpdateSession, IUpdateSearcher, IUpdateCollection, IUpdate,
IUpdateDownloader, IUpdateInstaller, IInstallationResult; learn.microsoft.com, "Windows Update
Agent API") and the registry.

- Inventory: installed KBs (a search for `IsInstalled=1`) and the OS build from the registry
  (`CurrentBuild` + `UBR` under HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion), with
  what the OS is (`inventory.windows`: `ProductName`, `InstallationType`, `EditionID`,
  `DisplayVersion` else `ReleaseId` from the same key, and the machine's
  `PROCESSOR_ARCHITECTURE` from the system environment), so that the controller picks the KBs
  of the device's own product from Microsoft's monthly documents.
- Missing updates: `IsInstalled=0 and IsHidden=0 and Type='Software'`, one patch per KB.
- Pending reboot: `Microsoft.Update.SystemInfo.RebootRequired`, or one of the registry's
  pending-reboot keys (Component Based Servicing, WindowsUpdate\\Auto Update\\RebootRequired,
  a PendingFileRenameOperations value).
- Install: only the approved KBs are added to the collection, downloaded, then installed;
  per-update results from IInstallationResult.GetUpdateResult(i).
- Facts: the update source (the WSUS server from policy, else Microsoft Update).

The COM objects are reached through pywin32's `win32com.client` when it is present; the Python
standard library has no COM client, so on a host without it this backend refuses to start and
says so (see docs/agent.md). Tests drive it with a fake of the object model.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, Callable

from patchctl_agent.backends import (
    FAILED,
    INSTALLED,
    NOT_APPLICABLE,
    Backend,
    BackendError,
    Inventory,
    OsInfo,
    Outcome,
    PatchResult,
    Update,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

NT = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
CRYPTOGRAPHY = r"SOFTWARE\Microsoft\Cryptography"
WSUS_POLICY = r"SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate"
REBOOT_KEYS = (
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending",
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired",
)
SESSION_MANAGER = r"SYSTEM\CurrentControlSet\Control\Session Manager"
SYSTEM_ENVIRONMENT = SESSION_MANAGER + r"\Environment"
MISSING = "IsInstalled=0 and IsHidden=0 and Type='Software'"
INSTALLED_QUERY = "IsInstalled=1 and Type='Software'"
# OperationResultCode: orcSucceeded, orcSucceededWithErrors
SUCCEEDED = (2, 3)
RESULT_NAMES = {
    0: "not started",
    1: "in progress",
    2: "succeeded",
    3: "succeeded with errors",
    4: "failed",
    5: "aborted",
}
SEVERITIES = {
    "Critical": "critical",
    "Important": "important",
    "Moderate": "moderate",
    "Low": "low",
}
# Registry reader: (key under HKLM, value name or None for "does the key exist") -> value or None
Registry = Callable[[str, "str | None"], Any]


class WuaBackend(Backend):
    name = "wua"

    def __init__(
        self,
        *,
        session: Any = None,
        system_info: Any = None,
        registry: Registry | None = None,
        new_collection: Callable[[], Any] | None = None,
    ) -> None:
        if session is None:
            session, system_info, new_collection = _com_objects()
        self.session = session
        self.system_info = system_info
        self.registry = registry or read_registry
        self.new_collection = new_collection or _com_collection

    def os_info(self) -> OsInfo:
        name = self.registry(NT, "ProductName") or "Windows"
        return OsInfo("windows", str(name), self._build() or "unknown")

    def machine_id(self) -> str | None:
        guid = self.registry(CRYPTOGRAPHY, "MachineGuid")
        return str(guid) if guid else None

    def _build(self) -> str | None:
        build, ubr = self.registry(NT, "CurrentBuild"), self.registry(NT, "UBR")
        if not build:
            return None
        return f"10.0.{build}.{ubr}" if ubr is not None else f"10.0.{build}"

    def inventory(self) -> Inventory:
        return Inventory(os_build=self._build(), kernel=self._build(), windows=self._windows())

    def _windows(self) -> dict[str, Any]:
        """The registry values that name the OS; absent values are left out."""
        values = {
            "productName": self.registry(NT, "ProductName"),
            "installationType": self.registry(NT, "InstallationType"),
            "editionId": self.registry(NT, "EditionID"),
            "displayVersion": self.registry(NT, "DisplayVersion") or self.registry(NT, "ReleaseId"),
            # The machine's architecture, not this process's (a 32-bit python says x86).
            "architecture": self.registry(SYSTEM_ENVIRONMENT, "PROCESSOR_ARCHITECTURE"),
        }
        return {key: str(value) for key, value in values.items() if value}

    def missing_updates(self) -> list[Update]:
        found: dict[str, Update] = {}
        for update in _items(self._search(MISSING).Updates):
            for kb in _kbs(update):
                found.setdefault(
                    kb,
                    Update(
                        id=kb,
                        title=str(update.Title),
                        classification=_classification(update),
                        severity=SEVERITIES.get(str(update.MsrcSeverity or "")),
                        kb=kb,
                        size_bytes=int(update.MaxDownloadSize or 0) or None,
                    ),
                )
        return [found[kb] for kb in sorted(found)]

    def installed_patches(self) -> list[str]:
        return sorted({kb for u in _items(self._search(INSTALLED_QUERY).Updates) for kb in _kbs(u)})

    def reboot_pending(self) -> bool:
        if self.system_info is not None and bool(self.system_info.RebootRequired):
            return True
        if any(self.registry(key, None) for key in REBOOT_KEYS):
            return True
        return bool(self.registry(SESSION_MANAGER, "PendingFileRenameOperations"))

    def facts(self) -> dict[str, Any]:
        server = self.registry(WSUS_POLICY, "WUServer")
        source = f"wsus:{server}" if server else "microsoft-update"
        return {"updateSource": source, "osBuild": self._build()}

    def download(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        del timeout  # WUA has no per-call timeout; the service's own limits apply
        chosen, _ = self._select(patch_ids)
        if not chosen:
            return Outcome(ok=True, output="nothing to download")
        downloader = self.session.CreateUpdateDownloader()
        downloader.Updates = self._collection([u for _, u in chosen])
        code = int(downloader.Download().ResultCode)
        ok = code in SUCCEEDED
        return Outcome(
            ok=ok,
            output=f"download: {RESULT_NAMES.get(code, code)}",
            reason=None if ok else f"download {RESULT_NAMES.get(code, code)}",
        )

    def install(self, patch_ids: Sequence[str], *, timeout: float) -> Outcome:
        del timeout
        chosen, early = self._select(patch_ids)
        if not chosen:
            return Outcome(ok=True, output="nothing to install", results=tuple(early.values()))
        installer = self.session.CreateUpdateInstaller()
        installer.Updates = self._collection([u for _, u in chosen])
        result = installer.Install()
        results = dict(early)
        overall = RESULT_NAMES.get(int(result.ResultCode), result.ResultCode)
        lines = [f"install: {overall}; reboot required: {bool(result.RebootRequired)}"]
        for index, (kb, update) in enumerate(chosen):
            one = result.GetUpdateResult(index)
            code = int(one.ResultCode)
            if code in SUCCEEDED:
                results[kb] = PatchResult(kb, INSTALLED)
            else:
                reason = f"{RESULT_NAMES.get(code, code)} (HRESULT {_hex(one.HResult)})"
                results[kb] = PatchResult(kb, FAILED, reason)
            lines.append(f"{kb} {update.Title}: {RESULT_NAMES.get(code, code)}")
        ordered = tuple(results[p] for p in patch_ids)
        return Outcome(
            ok=all(r.result != FAILED for r in ordered), output="\n".join(lines), results=ordered
        )

    def _select(
        self, patch_ids: Sequence[str]
    ) -> tuple[list[tuple[str, Any]], dict[str, PatchResult]]:
        """The missing updates of the approved KBs, EULAs accepted; the others answered."""
        by_kb: dict[str, Any] = {}
        for update in _items(self._search(MISSING).Updates):
            for kb in _kbs(update):
                by_kb.setdefault(kb, update)
        chosen: list[tuple[str, Any]] = []
        early: dict[str, PatchResult] = {}
        for patch_id in patch_ids:
            update = by_kb.get(patch_id.upper())
            if update is None:
                early[patch_id] = PatchResult(
                    patch_id, NOT_APPLICABLE, "Windows Update does not offer it to this machine"
                )
                continue
            if not bool(update.EulaAccepted):
                update.AcceptEula()
            chosen.append((patch_id, update))
        return chosen, early

    def _collection(self, updates: list[Any]) -> Any:
        collection = self.new_collection()
        for update in updates:
            collection.Add(update)
        return collection

    def _search(self, criteria: str) -> Any:
        try:
            return self.session.CreateUpdateSearcher().Search(criteria)
        except Exception as exc:  # COM raises its own error types
            raise BackendError(f"Windows Update search failed: {exc}") from exc


def _items(collection: Any) -> list[Any]:
    return [collection.Item(i) for i in range(int(collection.Count))]


def _kbs(update: Any) -> list[str]:
    return [f"KB{re.sub(r'[^0-9]', '', str(kb))}" for kb in _items(update.KBArticleIDs)]


def _classification(update: Any) -> str | None:
    names = {str(c.Name) for c in _items(update.Categories)}
    for name, value in (
        ("Security Updates", "security"),
        ("Critical Updates", "critical"),
        ("Definition Updates", "definition"),
        ("Drivers", "driver"),
        ("Feature Packs", "feature"),
        ("Update Rollups", "bugfix"),
        ("Updates", "bugfix"),
    ):
        if name in names:
            return value
    return None


def _hex(value: Any) -> str:
    try:
        return f"0x{int(value) & 0xFFFFFFFF:08X}"
    except (TypeError, ValueError):
        return str(value)


def _com_objects() -> tuple[Any, Any, Callable[[], Any]]:
    if sys.platform != "win32":
        raise BackendError("the Windows Update backend runs on Windows only")
    try:
        from win32com import client  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise BackendError(
            "the Windows Update backend needs pywin32's COM client (the standard library has "
            "none): install pywin32 into the agent's Python (see docs/agent.md)"
        ) from exc
    return (
        client.Dispatch("Microsoft.Update.Session"),
        client.Dispatch("Microsoft.Update.SystemInfo"),
        lambda: client.Dispatch("Microsoft.Update.UpdateColl"),
    )


def _com_collection() -> Any:
    raise BackendError("no COM update collection available")


def read_registry(key: str, value: str | None) -> Any:
    """A value under HKLM (None when absent); with `value` None, whether the key exists."""
    try:
        import winreg  # noqa: PLC0415 - Windows only
    except ImportError:
        return None
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:  # type: ignore[attr-defined]
            if value is None:
                return True
            return winreg.QueryValueEx(handle, value)[0]  # type: ignore[attr-defined]
    except OSError:
        return None
