"""The shipped CI examples as data: their shell lines, split into the install line and the
lines that validate and plan, so that tests run exactly what a CI runner would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "github": PROJECT_ROOT / "examples" / "ci" / "github-actions.yml",
    "gitlab": PROJECT_ROOT / "examples" / "ci" / "gitlab-ci.yml",
    "pre-commit": PROJECT_ROOT / ".pre-commit-hooks.yaml",
}
# The environment each CI system gives the job for pull request 42 / merge request 7.
CI_ENVIRONMENT = {
    "github": {"PR": "42", "BASE": "main"},
    "gitlab": {
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "HEAD_REF": "refs/merge-requests/7/head",
    },
}


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


def example_shell(name: str) -> tuple[str, str]:
    """(the install line, the shell lines from fetching the PR to writing plan.md) of an
    example; the lines that need the forge's own tools (apt-get, gh, the note's curl) are left
    out."""
    document = yaml.safe_load(EXAMPLES[name].read_text(encoding="utf-8"))
    if name == "github":
        runs = [step["run"] for step in document["jobs"]["plan"]["steps"] if "run" in step]
    else:
        job = document["patchctl"]
        runs = [*job["before_script"], *job["script"]]
    install = next(run for run in runs if run.startswith("pip install"))
    body = [
        run
        for run in runs
        if not run.startswith(("pip install", "apt-get", "gh pr", "curl"))
        and "--request POST" not in run
    ]
    return install, "\n".join(body)
