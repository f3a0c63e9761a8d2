"""`records.quick_init`: the same records as the dataclass's own `__init__` makes, faster."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from controller.core import audit, changes, commits, compliance, jobs, observed
from controller.core.planning import devices, values
from controller.core.records import quick_init
from controller.sources import git as git_source


@dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: tuple[int, ...] = field(default=(), kw_only=True)


@quick_init
@dataclass(frozen=True, slots=True)
class _Quick:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: tuple[int, ...] = field(default=(), kw_only=True)


def test_same_signature_as_the_dataclass_init() -> None:
    assert _shape(_Quick) == _shape(_Plain)


def test_fields_defaults_and_factories() -> None:
    one, two = _Quick(1), _Quick(2, "x", [3], d=(4,))
    assert (one.a, one.b, one.c, one.d) == (1, "b", [], ())
    assert (two.a, two.b, two.c, two.d) == (2, "x", [3], (4,))
    assert one.c is not _Quick(1).c  # a fresh list each time
    with pytest.raises(TypeError):
        _Quick(1, "x", [], (4,))  # type: ignore[call-arg]  # d is keyword-only
    with pytest.raises(TypeError):
        _Quick()  # type: ignore[call-arg]


def test_instances_stay_frozen_equal_and_hashable() -> None:
    record = _Quick(1, "x", d=(2,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.a = 2  # type: ignore[misc]
    assert record == _Quick(1, "x", d=(2,))
    assert dataclasses.replace(record, a=5).a == 5


def test_post_init_runs() -> None:
    @quick_init
    @dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n must not be negative")

    assert Checked(1).n == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_refuses_what_it_cannot_serve() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        n: int

    with pytest.raises(TypeError, match="slots"):
        quick_init(Unslotted)

    @dataclass(frozen=True, slots=True)
    class Hidden:
        n: int
        m: int = field(default=0, init=False)

    with pytest.raises(TypeError, match="outside __init__"):
        quick_init(Hidden)


@pytest.mark.parametrize(
    "record",
    [
        devices.DevicePlan,
        values.DeviceSummary,
        values.AlertSpec,
        compliance.BaselineCompliance,
        observed.DeviceView,
        observed.ScanView,
        observed.JobView,
        jobs.JobSpec,
        commits.CommitFacts,
        changes.ObjectChange,
        audit.AuditEvent,
        git_source.FileChange,
    ],
)
def test_the_records_made_per_device_or_commit_keep_their_dataclass_signature(record: type) -> None:
    """Each record `quick_init` serves has the signature `dataclasses` would give it."""
    generated: type = dataclass(frozen=True, slots=True)(
        type(record.__name__, (), {
            "__annotations__": {f.name: f.type for f in dataclasses.fields(record)},
            **{f.name: f for f in _copies(record)},
        })
    )  # fmt: skip
    assert _shape(record) == _shape(generated)


def _shape(record: type) -> list[tuple[str, object, str]]:
    """The parameters of `record.__init__`: name, kind and default."""
    parameters = inspect.signature(record.__init__).parameters.values()  # type: ignore[misc]
    return [(p.name, p.kind, repr(p.default)) for p in parameters]


def _copies(record: type) -> list[dataclasses.Field[object]]:
    """Fresh `field()`s with the defaults of `record`'s fields."""
    copies = []
    for f in dataclasses.fields(record):
        kwargs: dict[str, object] = {"kw_only": f.kw_only}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            kwargs["default_factory"] = f.default_factory
        made = field(**kwargs)  # type: ignore[call-overload]
        made.name = f.name
        copies.append(made)
    return copies
