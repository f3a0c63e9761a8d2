"""`runtime.observe.differing_devices`: the resync's comparison of the incremental observed state
with a full read, checked against the plain reference on varied views. Pure values, no store."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.observed import DeviceView, ObservedState, ScanView
from controller.kinds.common import OsFamily
from controller.runtime import observe

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def reference(before: ObservedState, after: ObservedState, *, now: datetime) -> set[str]:
    """The comparison as first written: every view compared as planned, `last_seen` dropped
    from the views of online devices."""

    def planned(view: DeviceView) -> tuple[DeviceView, bool]:
        online = view.is_online(now=now)
        return (dataclasses.replace(view, last_seen=None) if online else view), online

    old = {d.id: planned(d) for d in before.devices}
    new = {d.id: planned(d) for d in after.devices}
    differ = {i for i in old.keys() | new.keys() if old.get(i) != new.get(i)}
    differ |= {
        i
        for i in before.scans.keys() | after.scans.keys()
        if before.scans.get(i) != after.scans.get(i)
    }
    return differ


def view(device_id: str, **fields: object) -> DeviceView:
    defaults: dict[str, object] = {
        "tenant": "acme",
        "name": device_id,
        "os": OsFamily.LINUX,
        "labels": {"ring": "r0"},
        "last_seen": NOW - MINUTE,
        "poll_interval": MINUTE,
    }
    return DeviceView(id=device_id, **{**defaults, **fields})  # type: ignore[arg-type]


ONLINE, OFFLINE, LONG_OFFLINE = NOW - MINUTE, NOW - 3 * MINUTE, NOW - 9 * MINUTE  # poll: 1 min

# (name, the kept view's fields, the full read's fields, differs as the planner reads them)
CASES = [
    ("same values", {}, {}, False),
    ("checked in again, online both times", {"last_seen": ONLINE}, {"last_seen": NOW}, False),
    ("came back online", {"last_seen": OFFLINE}, {"last_seen": NOW}, True),
    ("went offline", {"last_seen": ONLINE}, {"last_seen": OFFLINE}, True),
    (
        "offline both times, other instant",
        {"last_seen": LONG_OFFLINE},
        {"last_seen": OFFLINE},
        True,
    ),
    ("seen for the first time", {"last_seen": None}, {"last_seen": NOW}, True),
    ("label changed", {"labels": {"ring": "r1"}}, {}, True),
    ("equal labels in another map", {"labels": {"ring": "r0"}}, {}, False),
    ("poll interval changed", {"poll_interval": 2 * MINUTE}, {}, True),
    ("tenant changed while checking in", {"tenant": "acme/shop"}, {"last_seen": NOW}, True),
]


@pytest.mark.parametrize(
    ("kept_fields", "found_fields", "differs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_view_differs_only_as_the_planner_reads_it(
    kept_fields: dict[str, object], found_fields: dict[str, object], *, differs: bool
) -> None:
    """`last_seen` counts as online or not, and by value while offline; any other field counts."""
    before = ObservedState(devices=(view("d-1", **kept_fields),))
    after = ObservedState(devices=(view("d-1", **found_fields),))
    expected = {"d-1"} if differs else set()
    assert (expected, expected) == (
        observe.differing_devices(before, after, now=NOW),
        reference(before, after, now=NOW),
    )


CHOICES: dict[str, list[object]] = {
    "tenant": ["acme", "acme/shop"],
    "os": [OsFamily.LINUX, OsFamily.WINDOWS, None],
    "role": ["server", "workstation"],
    "labels": [{}, {"ring": "r0"}, {"ring": "r1"}],
    "last_seen": [None, NOW, ONLINE, NOW - 2 * MINUTE, OFFLINE, LONG_OFFLINE],
    "poll_interval": [MINUTE, 3 * MINUTE],
}


def random_view(rng: random.Random, device_id: str) -> DeviceView:
    return view(device_id, **{name: rng.choice(values) for name, values in CHOICES.items()})


def changed_view(rng: random.Random, kept: DeviceView) -> DeviceView:
    """`kept` with one field drawn again (`last_seen` most often, as check-ins do)."""
    name = rng.choice(["last_seen", "last_seen", "last_seen", *CHOICES])
    return dataclasses.replace(kept, **{name: rng.choice(CHOICES[name])})


def random_state(rng: random.Random, ids: list[str]) -> ObservedState:
    present = [i for i in ids if rng.random() < 0.9]  # some enrolled, some retired
    scans = {
        i: ScanView(scanned_at=NOW, missing=rng.choice([(), ("P-1",), ("P-1", "P-2")]))
        for i in present
        if rng.random() < 0.8
    }
    return ObservedState(devices=tuple(random_view(rng, i) for i in present), scans=scans)


@pytest.mark.parametrize("seed", range(20))
def test_differing_devices_agrees_with_the_reference_on_varied_states(seed: int) -> None:
    """Random fleets (views equal, equal as planned, or different; enrolled and retired
    devices; shared and copied view objects): the fast comparison answers the reference's."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    ids = [f"d-{n:03d}" for n in range(200)]
    before = random_state(rng, ids)
    # the full read: mostly equal values in new objects, some kept objects, some changed views
    after_views = []
    for kept in before.devices:
        roll = rng.random()
        if roll < 0.4:
            after_views.append(dataclasses.replace(kept))
        elif roll < 0.6:
            after_views.append(kept)
        elif roll < 0.9:
            after_views.append(changed_view(rng, kept))
    after_views += [random_view(rng, i) for i in ids if rng.random() < 0.05]
    after = ObservedState(
        devices=tuple({v.id: v for v in after_views}.values()),
        scans=random_state(rng, ids).scans if seed % 2 else dict(before.scans),
    )
    expected = reference(before, after, now=NOW)
    assert expected == observe.differing_devices(before, after, now=NOW)
    assert expected  # the random states do differ somewhere
