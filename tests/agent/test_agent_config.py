"""agent.conf: every key read and checked when the agent starts, every mistake an exit 2 that
names the file, the section and the key (never a traceback, never a crash later)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from patchctl_agent import cli, procs

DURATIONS = ("install_timeout", "script_timeout", "lock_timeout", "scan_interval", "max_backoff")
NOT_SECONDS = ("-5", "-0.5", "nan", "inf", "-inf", "1e400", "604801", "abc", "5s", "")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.conf"
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What the agent says on stderr about agent.conf `text`, which it must refuse with exit 2."""
    config = _config(tmp_path, text)
    code = cli.main(["--config", str(config), "status", "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert 2 == code, err
    return err


@pytest.mark.parametrize("value", NOT_SECONDS)
@pytest.mark.parametrize("key", DURATIONS)
def test_a_duration_that_is_not_a_number_of_seconds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    """Negative, NaN, infinite, overlong and unreadable durations are exit 2 naming the key."""
    err = _refusal(tmp_path, f"[agent]\n{key} = {value}\n", capsys)
    assert f"agent.conf: [agent] {key}: must be a number of seconds " in err
    assert f"604800 (7 days), not {value!r}" in err


@pytest.mark.parametrize("key", [k for k in DURATIONS if k != "lock_timeout"])
def test_a_duration_of_zero_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """A timeout, interval or backoff of 0 s is refused: it must be more than 0."""
    err = _refusal(tmp_path, f"[agent]\n{key} = 0\n", capsys)
    assert f"[agent] {key}: must be a number of seconds more than 0 and at most 604800" in err


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        pytest.param("install_timeout", "0.5", 0.5, id="fraction"),
        pytest.param("script_timeout", " 1e3 ", 1000.0, id="exponent"),
        pytest.param("scan_interval", "604800", 604800.0, id="the-longest"),
        pytest.param("max_backoff", "30", 30.0, id="integer"),
        pytest.param("lock_timeout", "0", 0.0, id="lock-zero-does-not-wait"),
    ],
)
def test_a_duration_in_range_is_read_as_seconds(
    tmp_path: Path, key: str, raw: str, expected: float
) -> None:
    """Durations from just above 0 to a week are read as float seconds (the lock's may be 0)."""
    assert {key: expected} == cli.read_config(str(_config(tmp_path, f"[agent]\n{key} = {raw}\n")))


def test_the_longest_duration_is_one_a_command_can_be_given() -> None:
    """A command run with the longest timeout agent.conf accepts does not overflow the wait."""
    done = procs.run(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], timeout=cli.MAX_SECONDS
    )
    piped = procs.run(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], timeout=cli.MAX_SECONDS, stdin="x"
    )
    assert (0, 0) == (done.code, piped.code)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[DEFAULT]\nreboot_comand = rm -rf /\n", id="a-misspelt-key"),
        pytest.param("[DEFAULT]\nreboot_command = true\n[agent]\n", id="a-key-for-agent"),
        pytest.param("[DEFAULT]\n[agent]\nmax_backoff = 60\n", id="empty"),
    ],
)
def test_a_default_section_is_refused_like_any_unknown_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """[DEFAULT] is no way around the key check: exit 2 naming the file and the section."""
    err = _refusal(tmp_path, text, capsys)
    assert f"{tmp_path / 'agent.conf'}: unknown section [DEFAULT] (expected [agent])" in err
