"""agent.conf: every key read and checked when the agent starts, every mistake an exit 2 that
names the file, the section and the key (never a traceback, never a crash later)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from patchctl_agent import agent, cli, procs

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
        [sys.executable, "-c", "import sys; sys.stdin.read()"], timeout=agent.MAX_SECONDS
    )
    piped = procs.run(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], timeout=agent.MAX_SECONDS, stdin="x"
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


REFUSED = {
    "server": ("", "must not be empty (leave it out for the default)"),
    "state_dir": ("", "must not be empty"),
    "ca_file": ("", "must not be empty"),
    "insecure_http": ("maybe", "must be yes or no (true/false, on/off, 1/0), not 'maybe'"),
    "reboot_command": ("", "must not be empty"),
    "backend": ("yast", "must be one of auto, apt, dnf, yum, wua, not 'yast'"),
    "package_root": ("", "must not be empty"),
    "dnf_options": ("", "must not be empty"),
    "role": ("boss", "must be one of server, workstation, gateway, not 'boss'"),
    "labels": ("env=prod, site", "'site' is not key=value"),
}


def test_every_key_has_a_refused_value_below() -> None:
    """Each key of agent.conf is in a table of refused values (a new key needs its checks)."""
    assert sorted(cli.CONFIG_KEYS) == sorted([*REFUSED, *DURATIONS])


@pytest.mark.parametrize(
    ("key", "value", "message"), [(k, *v) for k, v in REFUSED.items()], ids=list(REFUSED)
)
def test_a_value_a_key_cannot_take_is_refused_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, message: str
) -> None:
    """An empty value, an unknown backend or role and a label that is not key=value are exit 2
    naming the file, the section and the key, whatever the command."""
    err = _refusal(tmp_path, f"[agent]\n{key} = {value}\n", capsys)
    assert f"{tmp_path / 'agent.conf'}: [agent] {key}: {message}" in err


def test_the_keys_are_read_typed(tmp_path: Path) -> None:
    """Texts are stripped, booleans and labels parsed, backend and role kept as written."""
    text = (
        "[agent]\nserver = https://x.example \ninsecure_http = off\nbackend = dnf\n"
        "role = gateway\nlabels = env=prod, site = fra\n"
    )
    assert {
        "server": "https://x.example",
        "insecure_http": False,
        "backend": "dnf",
        "role": "gateway",
        "labels": {"env": "prod", "site": "fra"},
    } == cli.read_config(str(_config(tmp_path, text)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda path: path.mkdir(), "cannot be read (Is a directory)", id="a-folder"),
        pytest.param(
            lambda path: path.write_bytes(b"[agent]\nrole = \xff\n"),
            "not UTF-8 text (byte 15)",
            id="not-utf-8",
        ),
    ],
)
def test_a_config_file_that_cannot_be_read_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], object],
    message: str,
) -> None:
    """A folder is not silently no configuration, and bytes that are not UTF-8 no traceback."""
    config = tmp_path / "agent.conf"
    make(config)
    code = cli.main(["--config", str(config), "status", "--state-dir", str(tmp_path / "s")])
    assert 2 == code
    assert f"{config}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["status", "--state-dir", ""], "argument --state-dir: must not be empty", id="state-dir"
        ),
        pytest.param(["--config", "", "status"], "argument --config: must not", id="config"),
        pytest.param(
            ["run", "--reboot-command", " "], "argument --reboot-command: must not", id="reboot"
        ),
        pytest.param(
            ["scan", "--backend", "yast"],
            "argument --backend: invalid choice: 'yast'",
            id="backend",
        ),
        pytest.param(
            ["enroll", "--hostname", "", "--server", "http://127.0.0.1:9"],
            "argument --hostname: must not be empty",
            id="hostname",
        ),
    ],
)
def test_an_option_the_agent_cannot_take_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Options are checked like the keys of agent.conf: exit 2 naming the option."""
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert 2 == exited.value.code
    assert message in capsys.readouterr().err
