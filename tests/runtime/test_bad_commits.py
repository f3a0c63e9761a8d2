"""A commit whose YAML cannot even be constructed (issue 17: `expires: 2027-02-30`) never takes
the controller down: validate, reconcile, the audit trail and `patchctl audit` all report it as a
located error, keep the last valid revision, record it once, and recover at the fixing commit.

Real git repositories in tmp_path, real SQLite stores; only the clock is fixed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from controller.cli import main
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.store import Store, open_store, schema
from controller.testing import PolicyRepo

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
OPENSSL = "policies/approvals/2026-11-openssl.yaml"
IMPOSSIBLE_DATE = (
    f"{OPENSSL}:11:12: spec.expires: '2027-02-30' is not a date or timestamp: "
    "day is out of range for month"
)

# Each way a value can fail while the YAML is constructed or validated, written over the
# example's openssl approval, and the one located error it must give.
BAD_VALUES = [
    ("impossible-date", "  expires: 2027-02-30\n", IMPOSSIBLE_DATE),
    (
        "impossible-timestamp",
        "  expires: 2027-01-31T25:00:00Z\n",
        f"{OPENSSL}:11:12: spec.expires: '2027-01-31T25:00:00Z' is not a date or timestamp: "
        "hour must be in 0..23",
    ),
    (
        "huge-integer",
        "  expires: " + "9" * 5000 + "\n",
        f"{OPENSSL}:11:12: spec.expires: '{'9' * 60}...' is not an integer: Exceeds the limit "
        "(4300 digits) for integer string conversion: value has 5000 digits; use "
        "sys.set_int_max_str_digits() to increase the limit",
    ),
    (
        "python-object-tag",
        "  expires: !!python/object/apply:os.system ['true']\n",
        f"{OPENSSL}:11:12: YAML error: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "binary",
        "  expires: !!binary MjAyNy0wMS0zMQ==\n",
        f"{OPENSSL}:11:12: spec.expires: binary values (`!!binary`) are not allowed: "
        "write the text itself",
    ),
    (
        "bad-base64",
        "  expires: !!binary '%%%'\n",
        f"{OPENSSL}:11:12: spec.expires: binary values (`!!binary`) are not allowed: "
        "write the text itself",
    ),
    (
        "octal-looking-integer",
        # in place of `expires`: a `ticket:` line here would also repeat line 12's key
        "  expires: 0777\n",
        f"{OPENSSL}:11:12: spec.expires: '0777' is read by YAML as 511, not as written; write "
        "the number without leading zeros or colons, or quote it as text",
    ),
    (
        "sexagesimal",
        "  expires: 1:30\n",
        f"{OPENSSL}:11:12: spec.expires: '1:30' is read by YAML as 90, not as written; write "
        "the number without leading zeros or colons, or quote it as text",
    ),
    (
        "unhashable-key",
        "  ? [a, b]\n  : c\n",
        f"{OPENSSL}:11:5: spec: a key must be a plain value, not a list or a mapping",
    ),
    (
        "duplicate-key",
        "  patches: [KB1]\n",
        f"{OPENSSL}:11:3: spec.patches: duplicate key 'patches': written at line 8 and again "
        "at line 11; only one of them would apply",
    ),
    (
        "merge-key",
        "  <<: {ticket: CHG-1}\n",
        f"{OPENSSL}:11:3: spec.<<: merge keys (`<<`) are not allowed: the key at line 11 "
        "copies fields from line 11, which a reviewer may not see; write the fields out",
    ),
]


def break_openssl(repo: PolicyRepo, line: str) -> None:
    """Replace the approval's `expires:` line (line 11) with `line`."""
    path = repo.path / OPENSSL
    text = path.read_text(encoding="utf-8")
    assert "  expires: 2027-01-31\n" in text
    path.write_text(text.replace("  expires: 2027-01-31\n", line), encoding="utf-8")


def fix_date(repo: PolicyRepo) -> None:
    """The fixing commit's change: the 28th of February instead of the 30th."""
    path = repo.path / OPENSSL
    path.write_text(path.read_text(encoding="utf-8").replace("2027-02-30", "2027-02-28"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def reconciler(repo: PolicyRepo, store: Store, tmp_path: Path) -> Reconciler:
    return Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
    )


def audit_rows(store: Store) -> list[tuple[str, str]]:
    """(action, revision) of every audit row from git, in insertion order."""
    a = schema.audit_events.c
    with store.read() as conn:
        found = conn.execute(sa.select(a.action, a.revision).order_by(a.id)).all()
    return [(row.action, row.revision) for row in found]


def alert_count(store: Store, kind: str) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(schema.alerts)
                .where(schema.alerts.c.kind == kind)
            ).scalar_one()
        )


def summary(outcome: Outcome) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    return (
        outcome.result,
        outcome.applied_revision,
        outcome.attempted_revision,
        outcome.errors,
    )


@pytest.mark.parametrize(
    ("line", "expected"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_validate_names_the_bad_value_on_disk_and_in_git(
    example_repo: PolicyRepo, tmp_path: Path, line: str, expected: str
) -> None:
    """`patchctl validate` exits 1 with one located error, from the working tree and a commit."""
    break_openssl(example_repo, line)
    runner = CliRunner()
    on_disk = runner.invoke(main, ["validate", "--repo", str(example_repo.path)])
    sha = example_repo.commit("bad value")
    state = ["--state-dir", str(tmp_path / "state")]
    in_git = runner.invoke(
        main, ["validate", "--repo", str(example_repo.path), "--rev", sha, *state]
    )
    assert (1, 1) == (on_disk.exit_code, in_git.exit_code), on_disk.output + in_git.output
    assert [expected] == on_disk.stdout.splitlines()
    assert [expected] == in_git.stdout.splitlines()


def test_reconcile_and_audit_survive_an_impossible_date_and_recover_at_the_fix(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """The issue's story: a bad date is one located error, recorded once, and a fix recovers."""
    runner = reconciler(example_repo, store, tmp_path)
    good = f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    assert ("applied", good, good, ()) == summary(runner.reconcile())

    break_openssl(example_repo, "  expires: 2027-02-30\n")
    bad = f"main@sha1:{example_repo.commit('approval until the 30th of February')}"
    passes = [summary(runner.reconcile()) for _ in range(3)]
    assert [("policy-invalid", good, bad, (IMPOSSIBLE_DATE,))] * 3 == passes
    assert 1 == alert_count(store, "PolicyInvalid")
    assert [("PolicyInvalid", bad)] == [row for row in audit_rows(store) if row[1] != good]

    restarted = reconciler(example_repo, store, tmp_path)  # a restart with the bad head
    assert ("policy-invalid", good, bad, (IMPOSSIBLE_DATE,)) == summary(restarted.reconcile())

    fix_date(example_repo)
    fixed = f"main@sha1:{example_repo.commit('the 28th, then')}"
    assert ("applied", fixed, fixed, ()) == summary(restarted.reconcile())
    assert [("PolicyInvalid", bad), ("ApprovalChanged", fixed)] == [
        row for row in audit_rows(store) if row[1] != good
    ]
    assert 1 == alert_count(store, "PolicyInvalid")


def test_the_audit_command_walks_over_the_old_bad_commit(
    example_repo: PolicyRepo, tmp_path: Path
) -> None:
    """`patchctl audit` on a fresh store reads the whole branch, bad commit included, and exits 0."""
    break_openssl(example_repo, "  expires: 2027-02-30\n")
    bad = example_repo.commit("approval until the 30th of February")
    fix_date(example_repo)
    fixed = example_repo.commit("the 28th, then")
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    open_store(database).close()  # a controller's store that has not read the branch yet
    common = [
        "--repo",
        str(example_repo.path),
        "--db",
        database,
        "--state-dir",
        str(tmp_path / "state"),
    ]
    result = CliRunner().invoke(main, ["audit", *common, "--since", "2000-01-01", "--json"])
    assert 0 == result.exit_code, result.output
    events = [
        (e["type"], e["revision"], e["details"].get("errors"))
        for e in json.loads(result.stdout)["events"]
        if e["revision"] in {f"main@sha1:{bad}", f"main@sha1:{fixed}"}
    ]
    assert [
        ("PolicyInvalid", f"main@sha1:{bad}", [IMPOSSIBLE_DATE]),
        ("ApprovalChanged", f"main@sha1:{fixed}", []),
    ] == events


def test_plan_prints_the_located_error_of_a_bad_head(
    example_repo: PolicyRepo, tmp_path: Path
) -> None:
    """`patchctl plan` on a pull request with the impossible date exits 1 naming the value."""
    base = example_repo.repo.head.commit.hexsha
    break_openssl(example_repo, "  expires: 2027-02-30\n")
    head = example_repo.commit("approval until the 30th of February")
    result = CliRunner().invoke(
        main,
        [
            "plan",
            "--repo",
            str(example_repo.path),
            "--state-dir",
            str(tmp_path / "state"),
            "--base",
            base,
            "--head",
            head,
        ],
    )
    assert (1, [f"head main@sha1:{head} does not validate:", f"  {IMPOSSIBLE_DATE}"]) == (
        result.exit_code,
        result.stdout.splitlines(),
    )
