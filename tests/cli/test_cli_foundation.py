"""The foundation commands as a user runs them: a real `patchctl` process on real repositories."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.testing import PROJECT_ROOT, PolicyRepo, run_cli

PATCHCTL = [sys.executable, "-m", "controller.cli"]


def test_validate_prints_errors_and_exits_one(tmp_path: Path) -> None:
    """A broken file gives `path:line:col: field: message` lines and exit code 1."""
    repo = PolicyRepo(tmp_path / "r")
    repo.copy_example()
    repo.write(
        "policies/baselines/windows-servers.yaml",
        (PROJECT_ROOT / "policies/baselines/windows-servers.yaml")
        .read_text()
        .replace("severities: [critical, important]", "severities: [critical, importnt]"),
    )
    result = run_cli("validate", cwd=repo.path)
    assert 1 == result.exit_code
    assert (
        "policies/baselines/windows-servers.yaml:15:30: spec.rules[0].severities[1]: 'importnt' is "
        "not one of critical, important, moderate, low, unspecified\n"
    ) == result.stdout
    assert "invalid: 1 error(s)" in result.stderr


def test_validate_json_reports_counts_and_revision(example_repo: PolicyRepo) -> None:
    """`--json` gives validity, the revision and the object counts."""
    result = run_cli(
        "validate",
        "--repo",
        str(example_repo.path),
        "--branch",
        "main",
        "--json",
        cwd=example_repo.path,
    )
    report = json.loads(result.stdout)
    assert (0, True, [], []) == (
        result.exit_code,
        report["valid"],
        report["errors"],
        report["warnings"],
    )
    assert report["revision"] == f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    assert 4 == report["objects"]["PatchWindow"]


@pytest.mark.parametrize(
    "rev",
    [
        pytest.param("no-such-rev", id="a-name"),
        # forges send it as a new branch's `before`: GitPython takes any 40 digits on trust
        pytest.param("0" * 40, id="the-all-zero-id"),
        pytest.param("deadbeef" * 5, id="an-unknown-full-id"),
        pytest.param("HEAD:inventory/tenants.yaml", id="a-file-not-a-commit"),
    ],
)
def test_validate_exits_two_on_a_missing_revision(example_repo: PolicyRepo, rev: str) -> None:
    """An unreadable revision is a usage/I-O error: exit 2 and a one-line message, no traceback."""
    result = run_cli("validate", "--rev", rev, cwd=example_repo.path)
    assert (2, f"patchctl: revision {rev!r} does not exist\n") == (
        result.exit_code,
        result.stderr,
    )


def test_plan_exits_two_on_the_all_zero_base(example_repo: PolicyRepo) -> None:
    """`plan --base <before>` of a push that created the branch: a clear error, exit 2."""
    result = run_cli("plan", "--base", "0" * 40, "--head", "main", cwd=example_repo.path)
    assert (2, f"patchctl: base: revision {'0' * 40!r} does not exist\n") == (
        result.exit_code,
        result.stderr,
    )


@pytest.mark.parametrize("holds", ["nothing", "yaml-elsewhere", "an-empty-policy-file"])
def test_validate_of_a_folder_without_policy_objects_says_so(tmp_path: Path, holds: str) -> None:
    """Run in the wrong folder (no policy YAML under policies/ or inventory/, in git or not),
    validate exits 2 naming where it looked, instead of "valid: 0 objects"."""
    if holds == "yaml-elsewhere":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "baseline.yaml").write_text("kind: Baseline\n")
    if holds == "an-empty-policy-file":
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "empty.yaml").write_text("# nothing yet\n")
    result = run_cli("validate", cwd=tmp_path)
    assert 2 == result.exit_code, result.stderr
    assert result.stderr.startswith("patchctl: no policy objects in working tree of .")
    assert "under policies/ and inventory/" in result.stderr
    assert "" == result.stdout


def test_repo_can_come_from_the_environment(example_repo: PolicyRepo, tmp_path: Path) -> None:
    """PATCHCTL_REPO sets --repo."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PATCHCTL_REPO": str(example_repo.path)}
    result = subprocess.run(
        [*PATCHCTL, "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr


def test_init_scaffolds_a_valid_committed_repository(tmp_path: Path) -> None:
    """`init` makes a repository that validates at its first commit."""
    target = tmp_path / "new"
    result = run_cli("init", str(target), cwd=tmp_path)
    assert 0 == result.exit_code, result.stderr
    check = run_cli("validate", "--repo", str(target), "--rev", "HEAD", cwd=tmp_path)
    assert 0 == check.exit_code, check.stdout + check.stderr
    assert (target / "README.md").is_file()
    assert (target / "schemas" / "baseline.schema.json").is_file()


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    """`init` never writes into a directory that has files."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    result = run_cli("init", str(tmp_path / "busy"), cwd=tmp_path)
    assert (2, ["keep.txt"]) == (result.exit_code, os.listdir(tmp_path / "busy"))


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    """schemas/ is exactly what `schema export` generates from the models (no drift)."""
    result = run_cli("schema", "export", "--check", str(PROJECT_ROOT / "schemas"), cwd=tmp_path)
    assert 0 == result.exit_code, result.stdout


def test_every_default_in_the_schemas_meets_its_own_pattern() -> None:
    """A default an editor shows is a value the schema accepts: a duration's default is `4h`,
    as a policy writes it, not the ISO 8601 `PT4H` its own pattern refuses."""
    from controller.sources import schemas  # noqa: PLC0415

    def defaults(node: object, where: str) -> list[tuple[str, str, str]]:
        found = []
        if isinstance(node, dict):
            default, pattern = node.get("default"), node.get("pattern")
            if isinstance(default, str) and isinstance(pattern, str):
                found.append((where, pattern, default))
            for key, value in node.items():
                found += defaults(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += defaults(value, f"{where}/{index}")
        return found

    found = [
        entry
        for name, text in schemas.render_all().items()
        for entry in defaults(json.loads(text), name)
    ]
    durations = [default for _, pattern, default in found if r"(\d+w)?" in pattern]
    assert [] == [(where, d) for where, pattern, d in found if re.search(pattern, d) is None]
    assert "6h" in durations  # a PatchFeed's refresh, among others


def test_schema_check_detects_drift(tmp_path: Path) -> None:
    """A stale schema file makes `schema export --check` fail and name it."""
    shutil.copytree(PROJECT_ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "schemas" / "baseline.schema.json").write_text("{}\n")
    result = run_cli("schema", "export", "--check", "schemas", cwd=tmp_path)
    assert 1 == result.exit_code
    assert "schemas/baseline.schema.json: out of date" in result.stdout


def test_every_command_answers_help(tmp_path: Path) -> None:
    """`--help` works on the group and on each command."""
    for args in (
        ["--help"],
        ["validate", "--help"],
        ["init", "--help"],
        ["schema", "export", "--help"],
    ):
        result = run_cli(*args, cwd=tmp_path)
        assert 0 == result.exit_code, args
        assert "Usage:" in result.stdout


def test_init_keeps_local_state_out_of_git(tmp_path: Path) -> None:
    """The scaffold's .gitignore is committed and ignores the state directory, SQLite files,
    default report output and .env files, but not patchctl.toml."""
    target = tmp_path / "new"
    assert 0 == run_cli("init", str(target), cwd=tmp_path).exit_code
    candidates = [
        ".patchctl/patchctl.db",
        "fleet.db-wal",
        "reports/compliance.md",
        ".env",
        "patchctl.toml",
        "policies/baselines/security.yaml",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *candidates],
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
    )
    committed = subprocess.run(
        ["git", "ls-files", ".gitignore"], cwd=target, capture_output=True, text=True, check=True
    )
    assert [".patchctl/patchctl.db", "fleet.db-wal", "reports/compliance.md", ".env"] == (
        ignored.stdout.split()
    )
    assert ".gitignore\n" == committed.stdout
