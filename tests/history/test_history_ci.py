"""The pull-request workflow: the shipped CI examples run commands the CLI has, and `plan`
prints what merging a realistic pull request would do to the fleet in the store."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from gitrepos import PROJECT_ROOT
from historyrepos import BOB, History, approval, linux_device

from controller.cli import main
from controller.store import Store

EXAMPLES = {
    "github": PROJECT_ROOT / "examples" / "ci" / "github-actions.yml",
    "gitlab": PROJECT_ROOT / "examples" / "ci" / "gitlab-ci.yml",
    "pre-commit": PROJECT_ROOT / ".pre-commit-hooks.yaml",
}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def commands(document: Any) -> list[str]:
    """Every shell line of a workflow, job or hook that runs patchctl."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in {"run", "entry"} and isinstance(value, str):
                found += value.splitlines()
            elif key == "script" and isinstance(value, list):
                found += [line for item in value for line in str(item).splitlines()]
            else:
                found += commands(value)
    elif isinstance(document, list):
        for item in document:
            found += commands(item)
    return [line.strip() for line in found if re.match(r"\s*patchctl\s", line)]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_ci_examples_run_commands_and_options_the_cli_has(name: str) -> None:
    """Each example parses as YAML, runs validate (and plan), with options `--help` lists."""
    document = yaml.safe_load(EXAMPLES[name].read_text(encoding="utf-8"))
    lines = commands(document)
    used = {shlex.split(line.split(">", 1)[0])[1] for line in lines}
    assert ({"validate"} if name == "pre-commit" else {"validate", "plan"}) == used
    runner = CliRunner()
    for line in lines:
        words = shlex.split(line.split(">", 1)[0])
        shown = runner.invoke(main, [words[1], "--help"])
        assert 0 == shown.exit_code, shown.output
        for option in (word for word in words[2:] if word.startswith("--")):
            assert option in shown.output, f"{name}: {option} is not an option of {words[1]}"


def test_the_pre_commit_hook_is_named_patchctl_validate() -> None:
    """`.pre-commit-hooks.yaml` declares the `patchctl-validate` hook on policy files."""
    hooks = yaml.safe_load(EXAMPLES["pre-commit"].read_text(encoding="utf-8"))
    hook = next(h for h in hooks if h["id"] == "patchctl-validate")
    assert (False, "python") == (hook["pass_filenames"], hook["language"])
    assert re.search(hook["files"], "policies/approvals/openssl.yaml")


def test_plan_shows_a_pull_request_against_the_fleet(
    git_history: History, store: Store, database_url: str, tmp_path: Path
) -> None:
    """Bob's PR grants USN-1-1 to linux-web: the comment names the head by its branch, the
    object and what it approves, the device, the pending approvals going down; --exit-code
    says something changed."""
    git_history.seed()
    git_history.write(
        "policies/baselines/linux.yaml",
        "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: linux, tenant: acme/retail}\n"
        "spec:\n  os: linux\n  targets: {groups: [linux-web]}\n  include: [USN-1-1]\n",
    )
    base = git_history.commit("baseline")
    git_history.git("checkout", "-q", "-b", "bob/openssl")
    git_history.write("policies/approvals/openssl.yaml", approval("openssl", "USN-1-1"))
    head = git_history.commit("Approve USN-1-1 for linux-web", author=BOB)
    git_history.git("checkout", "-q", "main")
    linux_device(store, missing=("USN-1-1",), now=NOW)
    common = [
        "plan",
        "--repo",
        str(git_history.path),
        "--base",
        base,
        "--head",
        head,
        "--db",
        database_url,
        "--now",
        NOW.isoformat(),
    ]
    runner = CliRunner()
    markdown = runner.invoke(main, [*common, "--exit-code"])
    as_json = runner.invoke(main, [*common, "--format", "json"])

    assert 1 == markdown.exit_code, markdown.output
    text = markdown.stdout
    assert text.startswith(f"### patchctl plan: `main@sha1:{base}` → `bob/openssl@sha1:{head}`")
    assert "#### `Approval/acme/retail/openssl`: ApprovalGranted\n\n- approves **USN-1-1**" in text
    assert "| acme/retail | USN-1-1 | - | 1: web-01 |" in text
    assert "Pending approvals: 1 → 0" in text
    assert len(text) < 60_000
    assert 0 == as_json.exit_code, as_json.output
    found = json.loads(as_json.stdout)
    assert isinstance(found, dict)
