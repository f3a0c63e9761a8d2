"""The agent as a package and a bundle: Python 3.9 syntax, the standard library of
`python3-minimal` only, nothing from `controller/`, its JSON and HTTP, its command line, and
`patchctl agent bundle`."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pydantic
import pytest
from click.testing import CliRunner
from required import unavailable

from controller.cli import main as patchctl
from controller.server import models
from patchctl_agent import agent, cli, protocol, wire
from patchctl_agent.agent import DEFAULT_REBOOT_COMMAND
from patchctl_agent.state import State, default_state_dir

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "patchctl_agent").rglob("*.py"))
# Modules Debian's python3-minimal lacks (checked on bookworm's python3.11-minimal). shutil is
# absent too, but CPython's argparse imports it where Debian's minimal argparse guards it, so the
# subprocess check cannot block it; the import check below covers the agent's own code.
ABSENT_ON_MINIMAL = ("json", "http", "dataclasses", "tempfile", "uuid", "shlex", "email.mime")
NEVER_IMPORTED = {"http", "dataclasses", "shutil", "tempfile", "uuid", "shlex", "gettext"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_parse_as_python_3_9(path: Path) -> None:
    """Every module is Python 3.9 syntax and postpones annotations (so `X | None` stays text)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
    futures = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert ["annotations"] == [alias.name for n in futures for alias in n.names]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_import_only_the_standard_library(path: Path) -> None:
    """The agent imports nothing from controller/ and no third-party package (but pywin32's COM
    client, imported by the Windows Update backend on Windows only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0]
        if isinstance(node, ast.ImportFrom)
        else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if not (isinstance(node, ast.ImportFrom) and node.level)
    }
    allowed = set(sys.stdlib_module_names) | {"patchctl_agent", "__future__"}
    if path.name == "wua.py":  # Windows' COM client: the one documented exception (docs/agent.md)
        allowed.add("win32com")
    assert set() == imported - allowed
    assert set() == imported & NEVER_IMPORTED


def test_the_agent_runs_without_the_modules_python3_minimal_lacks(tmp_path: Path) -> None:
    """With json, http, dataclasses, tempfile and friends unimportable, every agent
    module imports and the bundled agent answers `status`."""
    blocker = (
        "import sys\n"
        f"for name in {ABSENT_ON_MINIMAL!r}: sys.modules[name] = None\n"
        "import importlib, pkgutil, patchctl_agent\n"
        "for m in pkgutil.walk_packages(patchctl_agent.__path__, 'patchctl_agent.'):\n"
        "    importlib.import_module(m.name)\n"
        "from patchctl_agent import cli, wire\n"
        "assert wire._json is None\n"
        "sys.exit(cli.main(['status', '--state-dir', sys.argv[1]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", blocker, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]},
    )
    assert (2, "") == (done.returncode, done.stderr)
    assert "enrolled: False" in done.stdout


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": [1, 2.5, -3e-7, True, False, None]}, id="scalars"),
        pytest.param({"text": 'quote " back \\ nl \n tab \t ctl \x01 é 🎉'}, id="escapes"),
        pytest.param([[], {}, [{}], ""], id="empties"),
    ],
)
def test_own_json_round_trips_like_the_json_module(value: Any) -> None:
    """The fallback JSON writer and reader agree with the standard json module."""
    assert value == json.loads(wire.encode(value))
    assert value == wire.decode(json.dumps(value))
    assert value == wire.decode(json.dumps(value, ensure_ascii=True, indent=2))


@pytest.mark.parametrize("text", ["{", '{"a" 1}', "[1,]", '"open', "01", "tru", "{} x"], ids=str)
def test_own_json_refuses_what_is_not_json(text: str) -> None:
    """Malformed JSON is a ValueError, as with the json module."""
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError is a ValueError too
        wire.decode(text)


@pytest.mark.parametrize(
    ("url", "insecure", "expected"),
    [
        pytest.param(
            "https://patchctl.example.net/", False, "https://patchctl.example.net", id="https"
        ),
        pytest.param("http://127.0.0.1:8080", False, "http://127.0.0.1:8080", id="loopback"),
        pytest.param("http://[::1]:8080", False, "http://[::1]:8080", id="loopback-v6"),
        pytest.param("http://localhost:8080", False, "http://localhost:8080", id="localhost"),
        pytest.param(
            "http://patchctl.example.net",
            True,
            "http://patchctl.example.net",
            id="insecure-allowed",
        ),
    ],
)
def test_server_urls_accepted(url: str, insecure: bool, expected: str) -> None:
    """https anywhere; plain http to loopback, or anywhere with --insecure-http."""
    assert expected == wire.check_server_url(url, insecure_http=insecure)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("http://patchctl.example.net", "plain http to another host", id="http-remote"),
        pytest.param("http://10.0.0.5:8080", "plain http to another host", id="http-private"),
        pytest.param("ftp://patchctl.example.net", "is not an http:// or https:// URL", id="ftp"),
        pytest.param("patchctl.example.net", "is not an http:// or https:// URL", id="no-scheme"),
    ],
)
def test_server_urls_refused(url: str, message: str) -> None:
    """A URL that would send the token in clear, or is not HTTP, is refused with why."""
    with pytest.raises(ValueError, match=message):
        wire.check_server_url(url, insecure_http=False)


class _Enrol(BaseHTTPRequestHandler):
    """The far side of enrolment: answers like the controller, remembers the body."""

    bodies: list[dict[str, Any]] = []  # noqa: RUF012 - shared on purpose, one server per test
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        answer = (
            {"deviceId": "dev-1", "deviceToken": "device-secret-token", "pollInterval": 30}
            if self.status == 200
            else {"error": "conflict", "message": "hostname web-01 is enrolled by another machine"}
        )
        payload = json.dumps(answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def enrol_server() -> Any:
    _Enrol.bodies = []
    _Enrol.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Enrol)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Enrol
    server.shutdown()
    server.server_close()


def test_enroll_keeps_the_token_private_and_never_prints_it(
    enrol_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`enroll` stores the device id and token (mode 0600), sends the machine identity, and
    prints neither token."""
    url, handler = enrol_server
    state = tmp_path / "state"
    code = cli.main(
        [
            "--config",
            str(_config(tmp_path)),
            "enroll",
            "--server",
            url,
            "--enrollment-token",
            "enrol-secret",
            "--hostname",
            "web-01",
            "--state-dir",
            str(state),
            "--label",
            "env=prod",
        ]
    )
    out, err = capsys.readouterr()
    assert 0 == code, err
    assert "device-secret-token" == (state / "token").read_text()
    assert 0o600 == stat.S_IMODE((state / "token").stat().st_mode)
    sent = handler.bodies[0]
    assert ("enrol-secret", "web-01", {"env": "prod"}) == (
        sent["enrollmentToken"],
        sent["hostname"],
        sent["labels"],
    )
    assert 32 == len(sent["machineId"])
    assert all(secret not in out + err for secret in ("enrol-secret", "device-secret-token"))


def test_a_refused_enrolment_is_exit_code_1_with_the_controllers_message(
    enrol_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 409 from the controller is exit 1 and its message; nothing is stored."""
    url, handler = enrol_server
    handler.status = 409
    code = cli.main(
        [
            "--config",
            str(_config(tmp_path)),
            "enroll",
            "--server",
            url,
            "--enrollment-token",
            "t",
            "--hostname",
            "web-01",
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )
    err = capsys.readouterr().err
    assert 1 == code
    assert "the controller refused (409): hostname web-01 is enrolled by another machine" in err
    assert not (tmp_path / "state" / "token").exists()


HOST_NAME_RULE = (
    "is not a host name such as `web-01` or `realhost.example.org` (letters, digits and inner "
    "'-' in dot-separated labels of at most 63, 253 in all)"
)
LABEL_KEY_RULE = (
    "is not a label key such as `env` or `example.org/site` (a letter or digit, then letters, "
    "digits, '.', '_', '/' and '-', at most 63 in all)"
)


@pytest.mark.parametrize(
    ("options", "config", "message"),
    [
        pytest.param(
            ["--hostname", "Bad Host/Name"],
            "",
            f"--hostname: 'Bad Host/Name' {HOST_NAME_RULE}",
            id="hostname",
        ),
        pytest.param(
            [], "", f"this host's name (give --hostname): 'my_host' {HOST_NAME_RULE}", id="own-name"
        ),
        pytest.param(
            ["--hostname", "web-01", "--label", "bad key=1"],
            "",
            f"--label: 'bad key' {LABEL_KEY_RULE}",
            id="label",
        ),
        pytest.param(
            ["--hostname", "web-01"],
            "labels = env=prod, -x=1\n",
            f"agent.conf: [agent] labels: '-x' {LABEL_KEY_RULE}",
            id="config-label",
        ),
    ],
)
def test_a_name_the_controller_would_refuse_is_exit_2_saying_what_it_may_hold(
    enrol_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    config: str,
    message: str,
) -> None:
    """A hostname or label key the controller would refuse is a sentence, not its regular
    expression, and exit 2 before anything (the enrolment token) is sent."""
    url, handler = enrol_server
    monkeypatch.setattr(agent, "default_hostname", lambda: "my_host")
    code = cli.main(
        [
            "--config",
            str(_config(tmp_path, f"[agent]\n{config}")),
            "enroll",
            "--server",
            url,
            "--enrollment-token",
            "t",
            "--state-dir",
            str(tmp_path / "state"),
            *options,
        ]
    )
    err = capsys.readouterr().err
    assert (2, []) == (code, handler.bodies), err
    assert message in err


def _controller_takes(kind: Any, value: Any) -> bool:
    try:
        pydantic.TypeAdapter(kind).validate_python(value)
    except pydantic.ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    [
        "web-01",
        "WEB-01",
        "realhost.example.org",
        "1.2.3.4",
        "a",
        pytest.param("a" * 63, id="label-of-63"),
        pytest.param("a" * 64, id="label-of-64"),
        pytest.param(".".join(["a" * 63] * 3 + ["a" * 61]), id="253-in-all"),
        pytest.param(".".join(["a" * 63] * 4), id="255-in-all"),
        "-web",
        "web-",
        "web_01",
        "Bad Host/Name",
        "",
        "a..b",
        "web-01.",
        ".web",
        "web-01\n",
        "wéb",
    ],
    ids=repr,
)
def test_the_agent_takes_the_hostnames_the_controller_takes(name: str) -> None:
    """The agent's hostname check says yes exactly when the controller's request model does."""
    try:
        agent_takes = protocol.check_hostname(name) == name
    except ValueError:
        agent_takes = False
    assert _controller_takes(models.Hostname, name) == agent_takes


@pytest.mark.parametrize(
    "key",
    [
        "env",
        "example.org/site",
        "A_b-c.d/e",
        "0",
        pytest.param("k" * 63, id="63-characters"),
        pytest.param("k" * 64, id="64-characters"),
        "-x",
        ".x",
        "a b",
        "",
        "ké",
    ],
    ids=repr,
)
def test_the_agent_takes_the_label_keys_the_controller_takes(key: str) -> None:
    """The agent's label key check says yes exactly when the controller's request model does."""
    try:
        agent_takes = protocol.check_label_key(key) == key
    except ValueError:
        agent_takes = False
    assert _controller_takes(models.Labels, {key: "v"}) == agent_takes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["run", "--once"], "not enrolled", id="run-not-enrolled"),
        pytest.param(["enroll", "--enrollment-token", "t"], "--server is required", id="no-server"),
        pytest.param(
            ["enroll", "--server", "http://10.1.2.3", "--enrollment-token", "t"],
            "plain http to another host",
            id="http-remote",
        ),
        pytest.param(
            ["enroll", "--server", "http://127.0.0.1:9"], "--enrollment-token", id="no-token"
        ),
    ],
)
def test_usage_errors_are_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Usage mistakes exit 2 and say what is wrong."""
    code = cli.main(["--config", str(_config(tmp_path)), *args, "--state-dir", str(tmp_path / "s")])
    assert 2 == code
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("conf", "args", "message"),
    [
        pytest.param(
            "[agent]\nserver = http://10.1.2.3\n",
            ["enroll", "--enrollment-token", "t"],
            "server in agent.conf: 'http://10.1.2.3' is plain http to another host",
            id="server-in-conf",
        ),
        pytest.param(
            "[agent]\n",
            ["enroll", "--server", "ftp://10.1.2.3", "--enrollment-token", "t"],
            "--server: 'ftp://10.1.2.3' is not an http:// or https:// URL",
            id="server-flag",
        ),
        pytest.param(
            "[agent]\nca_file = /nonexistent/ca.pem\n",
            ["run", "--once"],
            "ca_file in agent.conf: /nonexistent/ca.pem is not a file",
            id="ca-file-in-conf-at-run",
        ),
        pytest.param(
            "[agent]\n",
            ["run", "--once", "--ca-file", "/nonexistent/ca.pem"],
            "--ca-file: /nonexistent/ca.pem is not a file",
            id="ca-file-flag-at-run",
        ),
        pytest.param(
            "[agent]\n",
            ["run", "--once"],
            "the enrolment's caFile: /gone/ca.pem is not a file",
            id="enrolment-ca-file-gone",
        ),
    ],
)
def test_a_bad_setting_names_where_it_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], conf: str, args: list[str], message: str
) -> None:
    """A bad server URL or CA file is a usage error (exit 2, before any request) naming the
    flag or the agent.conf key it came from; at `run` too, not an unreachable controller (3)."""
    state_dir = tmp_path / "s"
    enrolment = {"server": "https://patchctl.example.net", "deviceId": "dev-1"}
    enrolment |= {"hostname": "web-01", "caFile": "/gone/ca.pem"}
    State(state_dir).save_enrolment(enrolment, "secret-token")
    code = cli.main(
        ["--config", str(_config(tmp_path, conf)), *args, "--state-dir", str(state_dir)]
    )
    assert 2 == code
    assert message in capsys.readouterr().err


def test_an_unknown_config_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """agent.conf refuses keys it does not know, naming the file and the key."""
    config = _config(tmp_path, "[agent]\nserver = https://x.example\nreboot = now\n")
    assert 2 == cli.main(["--config", str(config), "status", "--state-dir", str(tmp_path)])
    assert f"{config}: [agent] reboot: unknown key" in capsys.readouterr().err


def _help(*command: str) -> str:
    """The agent's --help text of `command`, its lines joined (argparse wraps them)."""
    parser = cli.build_parser()
    if command:
        # argparse offers no public way to a subcommand's parser
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = actions[0].choices[command[0]]
    return " ".join(parser.format_help().split())


def test_help_shows_the_defaults_the_agent_uses() -> None:
    """--config, --state-dir and --reboot-command name the defaults the code falls back on."""
    assert (True, True, True) == (
        f"default: $PATCHCTL_AGENT_CONFIG, else {cli.default_config()};" in _help(),
        f"(default: {default_state_dir()})" in _help("status"),
        f"(default: {DEFAULT_REBOOT_COMMAND})" in _help("run"),
    )


def test_the_systemd_units_command_line_parses() -> None:
    """The unit's `run --config FILE` (the option after the command) reads that file."""
    unit = (ROOT / "controller" / "templates" / "agent" / "patchctl-agent.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.split("patchctl-agent.pyz", 1)[1].split()
    args = cli.build_parser().parse_args(argv)
    assert ("run", "/etc/patchctl-agent/agent.conf") == (args.command, args.config)


def test_the_environment_names_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, PATCHCTL_AGENT_CONFIG names agent.conf; a missing one is exit 2."""
    config = _config(tmp_path, "[agent]\nreboot = now\n")
    monkeypatch.setenv("PATCHCTL_AGENT_CONFIG", str(config))
    read = cli.main(["status", "--state-dir", str(tmp_path)])
    monkeypatch.setenv("PATCHCTL_AGENT_CONFIG", str(tmp_path / "missing.conf"))
    missing = cli.main(["status", "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert (2, 2) == (read, missing)
    assert f"{config}: [agent] reboot: unknown key" in err
    assert f"PATCHCTL_AGENT_CONFIG: {tmp_path / 'missing.conf'} does not exist" in err


def _config(tmp_path: Path, text: str = "[agent]\n") -> Path:
    path = tmp_path / "agent.conf"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundle_writes_the_zipapp_unit_config_and_readme(tmp_path: Path) -> None:
    """`patchctl agent bundle DIR` writes a runnable zipapp (agent package only), the systemd
    unit, the example configuration and the README."""
    result = CliRunner().invoke(patchctl, ["agent", "bundle", str(tmp_path / "out")])
    assert 0 == result.exit_code, result.output
    out = tmp_path / "out"
    assert [
        "README.md",
        "agent.conf.example",
        "patchctl-agent.pyz",
        "patchctl-agent.service",
    ] == sorted(p.name for p in out.iterdir())
    with zipfile.ZipFile(out / "patchctl-agent.pyz") as archive:
        names = archive.namelist()
    assert "__main__.py" in names
    assert {"patchctl_agent"} == {n.split("/")[0] for n in names if n != "__main__.py"}
    version = subprocess.run(
        [sys.executable, str(out / "patchctl-agent.pyz"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.stdout.startswith("patchctl-agent/")
    unit = (out / "patchctl-agent.service").read_text()
    assert "Restart=on-failure" in unit
    assert "patchctl-agent.pyz run" in unit
    assert 2 == cli.main(
        [
            "--config",
            str(out / "agent.conf.example"),
            "status",
            "--state-dir",
            str(tmp_path / "none"),
        ]
    )


@pytest.fixture
def https_server(tmp_path: Path) -> Any:
    """An HTTPS server on loopback with a self-signed certificate for 127.0.0.1 (made by the
    openssl command line); yields its URL and the certificate's path."""
    if shutil.which("openssl") is None:
        unavailable("the openssl command line is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    _Enrol.bodies = []
    _Enrol.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Enrol)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_https_with_the_ca_file_is_trusted(https_server: Any) -> None:
    """The agent's own HTTP client speaks TLS and trusts the --ca-file certificate."""
    url, cert = https_server
    answer = wire.request(
        "POST", f"{url}/api/v1/enroll", body={"hostname": "web-01"}, ca_file=str(cert)
    )
    assert (200, "dev-1") == (answer.status, answer.body["deviceId"])


def test_https_without_trust_is_refused(https_server: Any) -> None:
    """A certificate the system trust store does not know fails the call, sending nothing."""
    url, _ = https_server
    with pytest.raises(wire.WireError, match=r"TLS with 127\.0\.0\.1"):
        wire.request("POST", f"{url}/api/v1/enroll", body={"hostname": "web-01"})
    assert [] == _Enrol.bodies


def test_a_reader_gone_before_the_output_ends_it_quietly(tmp_path: Path) -> None:
    """`patchctl-agent status | head`: 141, as for any tool a broken pipe stops; no traceback
    (Python's own 'Exception ignored ... BrokenPipeError' at exit)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "patchctl_agent", "status", "--state-dir", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
            env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]},
        )
    finally:
        os.close(write_end)
    assert (141, b"") == (done.returncode, done.stderr)
