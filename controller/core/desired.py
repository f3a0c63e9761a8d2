"""DesiredState: the policy repository at one revision, validated and immutable.

Purely computational: built from already-parsed policy objects, indexed by kind, tenant and name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from controller.kinds import (
    Approval,
    ApprovalProposal,
    Baseline,
    Device,
    DeviceGroup,
    Document,
    Notification,
    ObjectKey,
    PatchFeed,
    PatchWindow,
    ReportSchedule,
    ScanSchedule,
    Script,
    ScriptJob,
    Tenant,
    Whitelist,
)
from controller.kinds.common import tenant_lineage

DocumentT = TypeVar("DocumentT", bound=Document)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object was defined: file path and the line of its document."""

    path: str
    line: int


@dataclass(frozen=True)
class DesiredState:
    """Every policy object of a revision. Lookups are by kind, tenant and name."""

    revision: str | None
    objects: tuple[Document, ...]
    origins: dict[ObjectKey, Origin] = field(default_factory=dict, compare=False)
    _index: dict[ObjectKey, Document] = field(init=False, repr=False, compare=False)
    _by_kind: dict[str, tuple[Document, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kind: dict[str, list[Document]] = {}
        for obj in self.objects:
            by_kind.setdefault(obj.KIND, []).append(obj)
        object.__setattr__(self, "_index", {obj.key: obj for obj in self.objects})
        object.__setattr__(self, "_by_kind", {k: tuple(v) for k, v in by_kind.items()})

    @classmethod
    def empty(cls) -> DesiredState:
        return cls(revision=None, objects=())

    def of_kind(self, kind: type[DocumentT]) -> tuple[DocumentT, ...]:
        return self._by_kind.get(kind.KIND, ())  # type: ignore[return-value]

    def get(self, kind: type[DocumentT], tenant: str | None, name: str) -> DocumentT | None:
        found = self._index.get(ObjectKey(kind.KIND, tenant, name))
        return found if isinstance(found, kind) else None

    def visible(self, kind: type[DocumentT], tenant: str | None, name: str) -> DocumentT | None:
        """The object named `name` as seen from `tenant`: its own, its partner's, or a global one.

        For a global viewer (tenant None) any tenant's object of that name will do: a global
        policy may target groups that exist per tenant.
        """
        if tenant is None:
            return next((obj for obj in self.of_kind(kind) if obj.name == name), None)
        for scope in (*tenant_lineage(tenant), None):
            found = self.get(kind, scope, name)
            if found is not None:
                return found
        return None

    def __iter__(self) -> Iterator[Document]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        return self.of_kind(Tenant)

    def tenant_paths(self) -> frozenset[str]:
        return frozenset(path for tenant in self.tenants for path in tenant.paths())

    @property
    def baselines(self) -> tuple[Baseline, ...]:
        return self.of_kind(Baseline)

    @property
    def whitelists(self) -> tuple[Whitelist, ...]:
        return self.of_kind(Whitelist)

    @property
    def approvals(self) -> tuple[Approval, ...]:
        return self.of_kind(Approval)

    @property
    def proposals(self) -> tuple[ApprovalProposal, ...]:
        return self.of_kind(ApprovalProposal)

    @property
    def windows(self) -> tuple[PatchWindow, ...]:
        return self.of_kind(PatchWindow)

    @property
    def scan_schedules(self) -> tuple[ScanSchedule, ...]:
        return self.of_kind(ScanSchedule)

    @property
    def scripts(self) -> tuple[Script, ...]:
        return self.of_kind(Script)

    @property
    def script_jobs(self) -> tuple[ScriptJob, ...]:
        return self.of_kind(ScriptJob)

    @property
    def notifications(self) -> tuple[Notification, ...]:
        return self.of_kind(Notification)

    @property
    def report_schedules(self) -> tuple[ReportSchedule, ...]:
        return self.of_kind(ReportSchedule)

    @property
    def feeds(self) -> tuple[PatchFeed, ...]:
        return self.of_kind(PatchFeed)

    @property
    def groups(self) -> tuple[DeviceGroup, ...]:
        return self.of_kind(DeviceGroup)

    @property
    def devices(self) -> tuple[Device, ...]:
        return self.of_kind(Device)


def count_by_kind(objects: Iterable[Document]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.KIND] = counts.get(obj.KIND, 0) + 1
    return dict(sorted(counts.items()))
