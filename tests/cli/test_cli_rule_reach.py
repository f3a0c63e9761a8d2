"""Baseline rules that can match nothing in the catalogue: `validate` and `plan` warn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from controller.testing import PROJECT_ROOT, run_cli

PATCHCTL = [sys.executable, "-m", "controller.cli"]
PACKAGES = PROJECT_ROOT / "tests/feeds/fixtures/debpackages/bookworm-security-main-amd64-Packages"
BASELINES = "policies/baselines/security.yaml"
OLD_RULE = "    - classifications: [security]\n      severities: [critical, important]\n"


def scaffold(tmp_path: Path) -> Path:
    """A new repository (`patchctl init`) and a state directory whose catalogue holds the
    Debian Packages fixture: three security records, severity unspecified."""
    target = tmp_path / "repo"
    assert 0 == run_cli("init", str(target), cwd=tmp_path).exit_code
    state = str(tmp_path / "state")
    imported = run_cli(
        "feed",
        "import",
        str(PACKAGES),
        "--format",
        "deb-packages",
        "--release",
        "debian:12",
        "--state-dir",
        state,
        cwd=tmp_path,
    )
    assert 0 == imported.exit_code, imported.stdout + imported.stderr
    return target


def severity_filter(target: Path) -> None:
    """Put back the Linux rule `init` wrote before: security of severity critical or important."""
    path = target / BASELINES
    text = path.read_text()
    rule = "    - classifications: [security]\n      releasedAfterDays: 3\n"
    assert rule in text
    path.write_text(text.replace(rule, OLD_RULE + "      releasedAfterDays: 3\n"))


WARNING = (
    "warning: spec.rules[0]: matches none of the 3 linux patches in the catalogue (security "
    "patches, of severity critical, important, 3 days after release; the catalogue's "
    "severities: unspecified 3; classifications: security 3), so it requires nothing and "
    "devices look compliant whatever they miss"
)


def test_scaffold_baseline_matches_debian_records(tmp_path: Path) -> None:
    """The Linux baseline `init` writes requires Debian index records: no warning."""
    target = scaffold(tmp_path)
    result = run_cli("validate", "--state-dir", str(tmp_path / "state"), cwd=target)
    assert (0, "") == (
        result.exit_code,
        "\n".join(line for line in result.stdout.splitlines() if ": warning: " in line),
    )


def test_validate_warns_with_file_and_line(tmp_path: Path) -> None:
    """A severity filter against severity-less records is a warning located at the rule (not
    at its Baseline's first line); exit stays 0."""
    target = scaffold(tmp_path)
    severity_filter(target)
    text = (target / BASELINES).read_text()
    rule_line = text[: text.index(OLD_RULE)].count("\n") + 1
    rule_column = OLD_RULE.index("classifications") + 1
    result = run_cli("validate", "--state-dir", str(tmp_path / "state"), cwd=target)
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert (0, [f"{BASELINES}:{rule_line}:{rule_column}: {WARNING}"]) == (
        result.exit_code,
        warnings,
    )


def test_validate_without_catalogue_says_nothing(tmp_path: Path) -> None:
    """No database and no --catalogue: nothing to judge the rules against, no warning."""
    target = scaffold(tmp_path)
    severity_filter(target)
    result = run_cli("validate", "--state-dir", str(tmp_path / "none"), cwd=target)
    assert (0, False) == (result.exit_code, "warning" in result.stdout)
    assert not (tmp_path / "none").exists()


def test_plan_warns_about_every_head_baseline(tmp_path: Path) -> None:
    """`plan` with a catalogue snapshot warns even when the PR does not touch the baseline."""
    target = scaffold(tmp_path)
    severity_filter(target)
    subprocess.run(
        ["git", "-C", str(target), "commit", "-qam", "severity filter"],
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@x",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x",
        },
    )
    snapshot = {
        "version": None,
        "patches": [
            {
                "id": "openssl=3.0.15-1~deb12u1",
                "title": "",
                "severity": None,
                "os": "linux",
                "classification": "security",
                "product": "openssl",
                "rating": None,
            },
            {
                "id": "KB5034127",
                "title": "",
                "severity": "important",
                "os": "windows",
                "classification": "security",
                "product": "Windows",
                "rating": 8.8,
            },
        ],
    }
    (tmp_path / "catalogue.json").write_text(json.dumps(snapshot))
    result = run_cli(
        "plan",
        "--base",
        "HEAD",
        "--head",
        "HEAD",
        "--format",
        "json",
        "--catalogue",
        str(tmp_path / "catalogue.json"),
        "--state-dir",
        str(tmp_path / "none"),
        cwd=target,
    )
    assert 0 == result.exit_code, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert [
        {
            "object": "Baseline/example/linux-security",
            "code": "rule-matches-nothing",
            "message": "spec.rules[0]: matches none of the 1 linux patches in the catalogue "
            "(security patches, of severity critical, important, 3 days after release; the "
            "catalogue's severities: unspecified 1; classifications: security 1), so it "
            "requires nothing and devices look compliant whatever they miss",
        }
    ] == warnings
