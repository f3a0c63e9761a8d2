"""The log pipeline (`controller.logs`, JSON lines, as `serve` configures it; every command):
tracebacks are rendered, and no secret reaches a line, whichever library writes it. Real
libraries (structlog, the standard library's logging, httpx against a real local server)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest
import structlog
from click.testing import CliRunner

from controller import logs
from controller.testing import json_logs

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from controller.testing import PolicyRepo


def raise_and_log(write: Callable[[], None]) -> None:
    try:
        raise ValueError("disk on fire")  # noqa: TRY301 - the exception to log
    except ValueError:
        write()


@pytest.mark.parametrize(
    "write",
    [
        lambda: structlog.get_logger("t").exception("pass crashed"),
        lambda: structlog.get_logger("t").error("pass crashed", exc_info=True),
        lambda: logging.getLogger("uvicorn.error").error(
            "pass crashed",
            exc_info=True,  # noqa: LOG014 - called from inside the handler by raise_and_log
        ),
    ],
    ids=["structlog-exception", "structlog-exc-info", "stdlib"],
)
def test_json_lines_carry_the_exception_and_its_traceback(
    capsys: pytest.CaptureFixture[str], write: Callable[[], None]
) -> None:
    """An exception is rendered as text with its traceback, never as `"exc_info": true`."""
    with json_logs(capsys) as lines:
        raise_and_log(write)
    [line] = lines
    assert ("exc_info" in line, "pass crashed") == (False, line["event"])
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: disk on fire")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://ci:pw-123@git.example/policy.git", "https://***@git.example/policy.git"),
        (
            "postgresql+psycopg://app:pw-123@db:5432/patchctl",
            "postgresql+psycopg://***@db:5432/patchctl",
        ),
        (
            "https://feeds.example/osv/all.zip?token=pw-123",
            "https://feeds.example/osv/all.zip?token=***",
        ),
        ("GET /x?api_key=pw-123 failed", "GET /x?api_key=*** failed"),
    ],
    ids=["git-url", "database-url", "query-token", "free-text-pair"],
)
def test_values_with_credentials_are_masked(
    capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    """A URL or key=value credential in any field of a line is masked."""
    with json_logs(capsys) as lines:
        structlog.get_logger("t").info("serving", repo=value)
    assert expected == lines[0]["repo"]


def test_keys_naming_a_secret_are_masked() -> None:
    """A field named like a secret is never shown, whatever it holds."""
    event = {"event": "x", "webhook_secret": "s", "authorization": "Bearer x", "token_id": "t1"}
    assert {
        "event": "x",
        "webhook_secret": "[redacted]",
        "authorization": "[redacted]",
        "token_id": "t1",
    } == dict(logs.redact(None, "info", event))


def test_a_one_shot_command_keeps_stdout_for_its_answer(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """`patchctl reconcile --json` prints JSON only; its log lines would go to stderr."""
    from controller.cli import main  # noqa: PLC0415 - the command line itself

    args = ["reconcile", "--repo", str(policy_repo.path), "--state-dir", str(tmp_path / "st")]
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert ("applied", 0) == (json.loads(result.stdout)["result"], result.exit_code)
