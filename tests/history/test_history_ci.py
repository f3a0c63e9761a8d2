"""The pull-request workflow: the shipped CI examples run commands the CLI has, and `plan`
prints what merging a realistic pull request would do to the fleet in the store."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from ciexamples import EXAMPLES, commands, example_shell
from click.testing import CliRunner
from historyrepos import BOB, History, approval, linux_device

from controller.cli import main
from controller.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


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


@pytest.mark.parametrize(
    ("name", "env", "head_label"),
    [
        pytest.param("github", {"PR": "42", "BASE": "main"}, "pr-42", id="github"),
        pytest.param(
            "gitlab",
            {
                "CI_MERGE_REQUEST_IID": "7",
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                "HEAD_REF": "refs/merge-requests/7/head",
            },
            "mr-7",
            id="gitlab",
        ),
    ],
)
def test_ci_examples_run_against_a_forge_and_write_the_plan(
    git_history: History, tmp_path: Path, name: str, env: dict[str, str], head_label: str
) -> None:
    """Each example's shell, run in a clone of a forge that holds the PR only as its forge ref,
    validates the head and writes a plan naming the PR; its install line refuses to run
    without PATCHCTL_PACKAGE instead of installing an unrelated `patchctl` from PyPI."""
    git_history.seed()
    git_history.write("policies/approvals/openssl.yaml", approval("openssl", "USN-1-1"))
    head = git_history.commit("Approve USN-1-1", author=BOB)
    git_history.git("reset", "-q", "--hard", "HEAD~1")
    git_history.git("update-ref", "refs/pull/42/head", head)
    git_history.git("update-ref", "refs/merge-requests/7/head", head)
    checkout = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(git_history.path), str(checkout)], check=True)
    install, shell = example_shell(name)
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PATCHCTL_SERVER": "",
        "PATCHCTL_STATE_DIR": str(tmp_path / "state"),
        **env,
    }
    done = subprocess.run(
        ["bash", "-euc", shell],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    refused = subprocess.run(
        ["bash", "-euc", install],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    plan = (checkout / "plan.md").read_text(encoding="utf-8")
    assert plan.startswith("### patchctl plan: `main@sha1:")
    assert f"→ `{head_label}@sha1:{head}`" in plan.splitlines()[0]
    assert "- approves **USN-1-1**" in plan.splitlines()
    assert 1 == refused.returncode
    assert "PATCHCTL_PACKAGE: set the PATCHCTL_PACKAGE variable" in refused.stderr
