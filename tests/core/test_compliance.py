"""Device compliance per baseline (DESIGN.md 3.6): each patch's state from the decisions, the
latest scan and the job ledger; the baseline's verdict from those states."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from controller.core import compliance
from controller.core.compliance import (
    BaselineCompliance,
    ComplianceState,
    DeviceHistory,
    PatchState,
)
from controller.core.decisions import Applicable, Decision, decide
from controller.core.observed import ScanView
from controller.kinds import Baseline
from controller.kinds.baselines import ExcludeAction
from controller.kinds.common import OsFamily
from controller.testing.fleets import CATALOGUE, SUNDAY_OPEN, desired, scan

NOW = SUNDAY_OPEN
# The planner tests' Windows baseline: security and critical patches released 7 days ago are
# required, KB-BAD is excluded; KB-OLD is superseded, KB-BUG and KB-NEW are not required.
WIN = next(b for b in desired().baselines if b.name == "win")
REF = "Baseline acme/win"
NO_HISTORY = DeviceHistory()


def decisions(baseline: Baseline) -> dict[str, Decision]:
    applicable = Applicable(os=OsFamily.WINDOWS, baselines=(baseline,))
    return {p: decide(applicable, CATALOGUE[p], today=NOW.date()) for p in CATALOGUE}


def evaluate(
    found: ScanView | None, history: DeviceHistory = NO_HISTORY, baseline: Baseline = WIN
) -> BaselineCompliance:
    return compliance.evaluate(
        baseline,
        device_id="id-win-01",
        scan=found,
        decisions=decisions(baseline),
        history=history,
        now=NOW,
    )


def test_without_a_scan_compliance_is_unknown() -> None:
    """No scan: unknown, no findings."""
    assert BaselineCompliance("id-win-01", REF, ComplianceState.UNKNOWN, None) == evaluate(None)


def test_a_scan_older_than_stale_scan_after_is_unknown() -> None:
    """Seven days (the default) without a newer scan makes the verdict unknown."""
    old = scan("KB-SEC", age=timedelta(days=7, minutes=1))
    assert (ComplianceState.UNKNOWN, ()) == (evaluate(old).state, evaluate(old).findings)


def test_freshness_is_measured_from_when_the_server_received_the_scan() -> None:
    """A scan stamped years ago by a wrong agent clock but just received is fresh."""
    wrong_clock = replace(
        scan(age=timedelta(days=3000), installed=("KB-SEC",)), received_at=NOW - timedelta(hours=1)
    )
    assert ComplianceState.COMPLIANT == evaluate(wrong_clock).state


@pytest.mark.parametrize(
    ("found", "history", "expected"),
    [
        pytest.param(
            scan(installed=("KB-SEC", "KB-CRIT", "KB-BUG")),
            DeviceHistory(),
            {PatchState.INSTALLED: 2},
            id="required-installed",
        ),
        pytest.param(
            scan("KB-SEC", "KB-BUG", "KB-NEW"),
            DeviceHistory(),
            {PatchState.MISSING: 1},
            id="only-required-missing-count",
        ),
        pytest.param(
            scan("KB-SEC", "KB-CRIT"),
            DeviceHistory(failed=frozenset({"KB-CRIT"})),
            {PatchState.MISSING: 1, PatchState.FAILED: 1},
            id="failed-by-the-ledger",
        ),
        pytest.param(
            scan("KB-OLD"),
            DeviceHistory(),
            {PatchState.NOT_APPLICABLE: 1},
            id="superseded-not-applicable",
        ),
        pytest.param(
            scan(installed=("KB-SEC", "KB-CRIT"), reboot=True),
            DeviceHistory(pending_reboot=frozenset({"KB-CRIT"})),
            {PatchState.INSTALLED: 1, PatchState.INSTALLED_PENDING_REBOOT: 1},
            id="pending-reboot-while-the-os-says-so",
        ),
        pytest.param(
            scan(installed=("KB-SEC", "KB-CRIT")),
            DeviceHistory(pending_reboot=frozenset({"KB-CRIT"})),
            {PatchState.INSTALLED: 2},
            id="ledger-reboot-ignored-once-the-os-is-done",
        ),
        pytest.param(
            scan(installed=("KB-BAD",)),
            DeviceHistory(),
            {PatchState.INSTALLED_REJECTED: 1},
            id="installed-excluded-blocks",
        ),
    ],
)
def test_each_patch_takes_its_state(
    found: ScanView, history: DeviceHistory, expected: dict[PatchState, int]
) -> None:
    """The counts per state, and the verdict: compliant only without a non-compliant state."""
    result = evaluate(found, history)
    non_compliant = bool(set(expected) & compliance.NON_COMPLIANT_STATES)
    verdict = ComplianceState.NON_COMPLIANT if non_compliant else ComplianceState.COMPLIANT
    assert (expected, verdict) == (result.counts(), result.state)


def test_an_excluded_patch_is_tolerated_as_a_dependency() -> None:
    """With `allow-as-dependency`, an installed excluded patch counts for nothing."""
    spec = WIN.spec.model_copy(update={"exclude_action": ExcludeAction.ALLOW_AS_DEPENDENCY})
    tolerant = WIN.model_copy(update={"spec": spec})
    result = evaluate(scan(installed=("KB-BAD",)), baseline=tolerant)
    assert (ComplianceState.COMPLIANT, {}) == (result.state, result.counts())


def test_findings_name_each_non_compliant_patch_in_scan_order() -> None:
    """Missing, failed, pending reboot, then rejected; each in the scan's order."""
    result = evaluate(
        scan("KB-CRIT", "KB-SEC", installed=("KB-BAD",)),
        DeviceHistory(failed=frozenset({"KB-SEC"})),
    )
    assert (
        ("KB-CRIT", PatchState.MISSING),
        ("KB-SEC", PatchState.FAILED),
        ("KB-BAD", PatchState.INSTALLED_REJECTED),
    ) == result.findings


def test_one_evaluator_gives_every_device_the_record_a_fresh_one_gives() -> None:
    """A `BaselineEvaluator` reuses the fields it computed for a scan's content: across devices,
    scan times, histories and reboot signals (in random order, with repeats), each record
    equals the one a new evaluator computes."""
    rng = random.Random(14)  # noqa: S311 - a reproducible sample, not a secret
    ids = sorted(CATALOGUE)
    histories = [
        NO_HISTORY,
        DeviceHistory(failed=frozenset({"KB-SEC"})),
        DeviceHistory(pending_reboot=frozenset({"KB-CRIT"})),
    ]
    shared = compliance.BaselineEvaluator(WIN, decisions(WIN))
    scans = [
        scan(
            *rng.sample(ids, rng.randint(0, 3)),
            installed=tuple(rng.sample(ids, rng.randint(0, 3))),
            age=timedelta(hours=rng.choice((1, 2, 200))),
            reboot=rng.random() < 0.3,
        )
        for _ in range(60)
    ]
    for n in range(600):
        found = rng.choice(scans)
        history = rng.choice(histories)
        fresh = compliance.BaselineEvaluator(WIN, decisions(WIN))
        args = {"device_id": f"dev-{n}", "scan": found, "history": history, "now": NOW}
        assert fresh.evaluate(**args) == shared.evaluate(**args)


def test_an_evaluator_remembers_a_bounded_number_of_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past `SCANS_REMEMBERED` distinct scans the evaluator starts over, and still answers
    right."""
    monkeypatch.setattr(compliance, "SCANS_REMEMBERED", 2)
    evaluator = compliance.BaselineEvaluator(WIN, decisions(WIN))
    first = scan("KB-SEC")
    for found in (first, scan("KB-CRIT"), scan("KB-SEC", "KB-CRIT"), first):
        record = evaluator.evaluate(device_id="d", scan=found, history=NO_HISTORY, now=NOW)
        assert evaluate(found).state == record.state
        assert evaluate(found).findings == record.findings
        assert len(evaluator._by_scan) <= 2
