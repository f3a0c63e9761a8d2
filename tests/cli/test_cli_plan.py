"""`patchctl plan` from two revisions alone, as CI runs it: a realistic pull request on the
example repository (several kinds changed), published only as `refs/pull/12/head`, checked
field by field in JSON and in the comment; the catalogue snapshot file's errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.testing import PolicyRepo

NOW = "2026-11-30T12:00:00+00:00"
CATALOGUE = {
    "version": "test",
    "patches": [
        {
            "id": "USN-7123-1",
            "title": "OpenSSL vulnerabilities",
            "severity": "important",
            "os": "linux",
        },
        {
            "id": "USN-7200-1",
            "title": "curl vulnerabilities",
            "severity": "moderate",
            "os": "linux",
        },
    ],
}


def edit(repo: PolicyRepo, path: str, old: str, new: str) -> None:
    target = repo.path / path
    text = target.read_text(encoding="utf-8")
    assert old in text, f"{path} has no {old!r}"
    target.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def pull_request(example_repo: PolicyRepo, tmp_path: Path) -> tuple[PolicyRepo, str, str, Path]:
    """The example repository with PR 12 under refs/pull/12/head only; and a catalogue file."""
    base = example_repo.repo.head.commit.hexsha
    edit(
        example_repo,
        "policies/approvals/2026-11-openssl.yaml",
        "patches: [USN-7123-1]",
        "patches: [USN-7123-1, USN-7200-1]",
    )
    edit(
        example_repo,
        "policies/approvals/2026-11-openssl.yaml",
        "expires: 2027-01-31",
        "expires: 2026-12-15",
    )
    edit(
        example_repo,
        "policies/approvals/2026-11-openssl.yaml",
        "targets: {groups: [linux-web]}",
        "targets: {groups: [linux-web], devices: [web-09]}",
    )
    example_repo.write(
        "policies/approvals/2026-12-typo.yaml",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: 2026-12-typo, tenant: acme/retail}\n"
        "spec: {patches: [USN-9999-1], targets: {groups: [linux-web]}, reason: hot fix, expires: 2026-11-20}\n",
    )
    edit(
        example_repo,
        "policies/baselines/linux-security.yaml",
        "severities: [critical, important]",
        "severities: [critical, important, moderate]",
    )
    edit(
        example_repo,
        "policies/baselines/linux-security.yaml",
        "releasedAfterDays: 3",
        "releasedAfterDays: 1",
    )
    edit(
        example_repo,
        "policies/schedules/linux-weekly.yaml",
        'cron: "0 3 * * SAT"',
        'cron: "0 4 * * SUN"',
    )
    edit(example_repo, "policies/schedules/linux-weekly.yaml", "approval: manual", "approval: auto")
    edit(
        example_repo,
        "policies/scripts/linux.yaml",
        "systemctl stop app && sleep 5",
        "systemctl stop app && sleep 15",
    )
    head = example_repo.commit("December: curl, stricter Linux baseline, Sunday window")
    example_repo.repo.git.reset("-q", "--hard", base)
    example_repo.repo.git.update_ref("refs/pull/12/head", head)
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps(CATALOGUE), encoding="utf-8")
    return example_repo, base, head, catalogue


def plan(repo: PolicyRepo, tmp_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        main,
        [
            "plan",
            "--repo",
            str(repo.path),
            "--base",
            "main",
            "--head",
            "refs/pull/12/head",
            "--state-dir",
            str(tmp_path / "no-store"),
            "--now",
            NOW,
            *extra,
        ],
    )


def test_a_realistic_pull_request_reads_field_by_field(
    pull_request: tuple[PolicyRepo, str, str, Path], tmp_path: Path
) -> None:
    """Approvals, a baseline, a window and a script changed: each says what it changes."""
    repo, base, head, catalogue = pull_request
    done = plan(repo, tmp_path, "--catalogue", str(catalogue), "--format", "json")
    assert 0 == done.exit_code, done.output
    expected = EXPECTED | {"base": f"main@sha1:{base}", "head": f"pr-12@sha1:{head}"}
    assert expected == json.loads(done.stdout)


# The whole document for PR 12 at NOW: every field a reviewer reads.
EXPECTED = {
    "base": "main@sha1:BASE",
    "head": "pr-12@sha1:HEAD",
    "now": "2026-11-30T12:00:00+00:00",
    "scope": None,
    "changed": True,
    "catalogue": {"patches": 2},
    "fleetKnown": False,
    "changes": [
        {
            "object": "Approval/acme/retail/2026-11-openssl",
            "kind": "Approval",
            "tenant": "acme/retail",
            "name": "2026-11-openssl",
            "event": "ApprovalChanged",
            "action": "changed",
            "approved": [
                {
                    "id": "USN-7200-1",
                    "title": "curl vulnerabilities",
                    "severity": "moderate",
                    "known": True,
                }
            ],
            "revoked": [],
            "rejected": [],
            "unrejected": [],
            "targetsAdded": ["device web-09"],
            "targetsRemoved": [],
            "expires": "2026-12-15",
            "expiresInDays": 15,
            "direction": None,
            "details": [
                "reason: CVE-2026-1234 hot fix for the web shop",
                "ticket: CHG-4711",
                "expiry: was 2027-01-31, now expires 2026-12-15 (in 15 days)",
                "still approves USN-7123-1",
            ],
            "diff": None,
        },
        {
            "object": "Approval/acme/retail/2026-12-typo",
            "kind": "Approval",
            "tenant": "acme/retail",
            "name": "2026-12-typo",
            "event": "ApprovalGranted",
            "action": "added",
            "approved": [{"id": "USN-9999-1", "title": None, "severity": None, "known": False}],
            "revoked": [],
            "rejected": [],
            "unrejected": [],
            "targetsAdded": ["group linux-web"],
            "targetsRemoved": [],
            "expires": "2026-11-20",
            "expiresInDays": -10,
            "direction": None,
            "details": ["reason: hot fix", "expired: last day was 2026-11-20 (10 days ago)"],
            "diff": None,
        },
        {
            "object": "Baseline/acme/linux-security",
            "kind": "Baseline",
            "tenant": "acme",
            "name": "linux-security",
            "event": "BaselineChanged",
            "action": "changed",
            "approved": [],
            "revoked": [],
            "rejected": [],
            "unrejected": [],
            "targetsAdded": [],
            "targetsRemoved": [],
            "expires": None,
            "expiresInDays": None,
            "direction": "tightened",
            "details": [
                "rule (security patches, of severity critical, important, moderate, "
                "1 day after release) requires more: severities critical, important "
                "→ critical, important, moderate; grace period 3 → 1 days"
            ],
            "diff": None,
        },
        {
            "object": "PatchWindow/acme/linux-weekly",
            "kind": "PatchWindow",
            "tenant": "acme",
            "name": "linux-weekly",
            "event": "WindowChanged",
            "action": "changed",
            "approved": [],
            "revoked": [],
            "rejected": [],
            "unrejected": [],
            "targetsAdded": [],
            "targetsRemoved": [],
            "expires": None,
            "expiresInDays": None,
            "direction": None,
            "details": [
                "next occurrences before: Sat 2026-12-05 03:00-06:00 UTC; Sat "
                "2026-12-12 03:00-06:00 UTC; Sat 2026-12-19 03:00-06:00 UTC",
                "next occurrences after: Sun 2026-12-06 04:00-07:00 UTC; Sun "
                "2026-12-13 04:00-07:00 UTC; Sun 2026-12-20 04:00-07:00 UTC",
                "approval: auto",
                "spec.recurrence.cron: 0 3 * * SAT → 0 4 * * SUN",
            ],
            "diff": None,
        },
        {
            "object": "Script/acme/drain-node",
            "kind": "Script",
            "tenant": "acme",
            "name": "drain-node",
            "event": "ScriptChanged",
            "action": "changed",
            "approved": [],
            "revoked": [],
            "rejected": [],
            "unrejected": [],
            "targetsAdded": [],
            "targetsRemoved": [],
            "expires": None,
            "expiresInDays": None,
            "direction": None,
            "details": [],
            "diff": "--- a/Script/acme/drain-node\n"
            "+++ b/Script/acme/drain-node\n"
            "@@ -1,3 +1,3 @@\n"
            " set -euo pipefail\n"
            " touch /run/patchctl-maintenance\n"
            "-systemctl stop app && sleep 5\n"
            "+systemctl stop app && sleep 15\n",
        },
    ],
    "warnings": [
        {
            "object": "Approval/acme/retail/2026-11-openssl",
            "code": "unknown-target",
            "message": "targets device 'web-09', which is not declared in inventory/ or "
            "listed by any group",
        },
        {
            "object": "Approval/acme/retail/2026-12-typo",
            "code": "unknown-patch",
            "message": "USN-9999-1 is not in the patch catalogue (2 patches): a typo, or a "
            "patch no feed has published yet",
        },
        {
            "object": "Approval/acme/retail/2026-12-typo",
            "code": "expired-on-arrival",
            "message": "already expired (last day 2026-11-20) when this change arrives: it "
            "approves nothing",
        },
        {
            "object": "PatchWindow/acme/linux-weekly",
            "code": "linux-auto-approval",
            "message": "approval: auto approves nothing on Linux devices: Linux patches are "
            "approved only by explicit id in an Approval or Whitelist",
        },
    ],
}


def test_the_comment_names_the_pull_request_and_leads_with_warnings(
    pull_request: tuple[PolicyRepo, str, str, Path], tmp_path: Path
) -> None:
    """The markdown heads with `pr-12@sha1:…`, lists the four warnings before any object,
    and --exit-code says that something changed."""
    repo, base, head, catalogue = pull_request
    done = plan(repo, tmp_path, "--catalogue", str(catalogue), "--exit-code")
    assert 1 == done.exit_code, done.output
    lines = done.stdout.splitlines()
    assert f"### patchctl plan: `main@sha1:{base}` → `pr-12@sha1:{head}`" == lines[0]
    assert ["5 policy object(s) change.", "", "**Warnings (4)**"] == lines[2:5]
    assert lines.index("**Warnings (4)**") < lines.index(
        "#### `Approval/acme/retail/2026-11-openssl`: ApprovalChanged"
    )
    assert "- approves **USN-7200-1** (moderate): curl vulnerabilities" in lines
    assert "#### `Baseline/acme/linux-security`: BaselineChanged (tightened)" in lines


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("{", "catalogue.json: not JSON: ", id="not-json"),
        pytest.param(
            '{"items": []}',
            "catalogue.json: patches: expected a list of patch objects",
            id="no-patches",
        ),
        pytest.param(
            '{"patches": [{"title": "x"}]}',
            "catalogue.json: patches[0].id: expected a patch id string",
            id="no-id",
        ),
        pytest.param(
            '{"patches": [{"id": "A", "severity": 3}]}',
            "catalogue.json: patches[0].severity: expected a string or null",
            id="bad-severity",
        ),
        pytest.param(None, "catalogue.json: cannot read: No such file or directory", id="missing"),
    ],
)
def test_a_bad_catalogue_file_is_named_with_its_field(
    pull_request: tuple[PolicyRepo, str, str, Path],
    tmp_path: Path,
    content: str | None,
    expected: str,
) -> None:
    """A catalogue snapshot that cannot be used exits 2 naming the file and the field."""
    repo = pull_request[0]
    path = tmp_path / "bad" / "catalogue.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content, encoding="utf-8")
    done = plan(repo, tmp_path, "--catalogue", str(path))
    assert 2 == done.exit_code, done.output
    assert expected in done.output


def test_a_revision_that_does_not_exist_exits_2_naming_it(
    pull_request: tuple[PolicyRepo, str, str, Path], tmp_path: Path
) -> None:
    """An unknown head is a usage error that names the side and the revision."""
    done = CliRunner().invoke(
        main,
        [
            "plan",
            "--repo",
            str(pull_request[0].path),
            "--base",
            "main",
            "--head",
            "refs/pull/13/head",
        ],
    )
    assert 2 == done.exit_code
    assert "head: revision 'refs/pull/13/head' does not exist" in done.output


def test_server_and_catalogue_exclude_each_other(tmp_path: Path) -> None:
    """`--server` with `--catalogue` is a usage error before anything is contacted."""
    done = CliRunner().invoke(
        main,
        [
            "plan",
            "--server",
            "http://127.0.0.1:9",
            "--catalogue",
            str(tmp_path / "c.json"),
            "--base",
            "main",
            "--head",
            "main",
        ],
        env={"PATCHCTL_TOKEN": "pcr_not-used"},
    )
    assert 2 == done.exit_code
    assert "--catalogue is for a plan made here" in done.output
