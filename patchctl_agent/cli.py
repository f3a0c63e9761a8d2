"""The `patchctl-agent` command line: enroll, run [--once], scan [--json], status.

Exit codes (every command):
  0  success
  1  a negative outcome: a job failed, or the controller refused (bad enrolment token, a
     machine identity that conflicts with the enrolled device, a revoked device token)
  2  usage, configuration or state error (bad option, unknown agent.conf key, not enrolled)
  3  the controller could not be reached (events stay queued and are sent on the next run)
  4  the package manager could not answer (dpkg/apt, rpm/dnf or Windows Update failed)
  141 the reader of the output went away (`status | head`), quietly, as for any Unix tool

Options override `agent.conf` (`--config`; default: the file PATCHCTL_AGENT_CONFIG names, else
/etc/patchctl-agent/agent.conf or %ProgramData%\\patchctl-agent\\agent.conf; a missing default
file is no configuration, a missing named one an error), which overrides the built-in defaults.
The device token is kept in the state directory (mode 0600) and never printed.
"""

from __future__ import annotations

import argparse
import configparser
import math
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from patchctl_agent import AGENT_VERSION, VERSION, agent, backends, protocol, wire
from patchctl_agent.state import State, StateError, default_state_dir

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_BACKEND = 0, 1, 2, 3, 4
EXIT_READER_GONE = 141  # 128 + SIGPIPE: what a shell reports for a tool a broken pipe stopped
ROLES = ("server", "workstation", "gateway")


def _seconds(*, zero: str | None = None) -> Callable[[str], float]:
    """The reader of a duration key: a number of seconds, more than 0 (or 0 when `zero` says
    what 0 means) and at most agent.MAX_SECONDS; NaN and infinity are not numbers of seconds."""
    lowest = f"from 0 ({zero}) to" if zero else "more than 0 and at most"
    expected = f"must be a number of seconds {lowest} {agent.MAX_SECONDS} (7 days)"

    def read(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        in_range = (value >= 0 if zero else value > 0) and value <= agent.MAX_SECONDS  # NaN: False
        if not in_range:
            raise ValueError(f"{expected}, not {raw.strip()!r}")
        return value

    return read


def _text(raw: str) -> str:
    """A value that says something: an empty state_dir was the current folder, and an empty
    reboot_command a reboot that did nothing and succeeded."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty (leave it out for the default)")
    return value


def _given(raw: str) -> str:
    """The type of the options that take a text: empty is a mistake, as in agent.conf."""
    try:
        return _text(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def read(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    return read


def _labels(raw: str) -> dict[str, str]:
    return parse_labels([_text(raw)])


def _yes_no(raw: str) -> bool:
    """A boolean as configparser reads one (yes/no, true/false, on/off, 1/0)."""
    value = configparser.ConfigParser.BOOLEAN_STATES.get(raw.strip().lower())
    if value is None:
        raise ValueError(f"must be yes or no (true/false, on/off, 1/0), not {raw.strip()!r}")
    return value


# Every key of agent.conf and its reader: the value typed, or ValueError saying what is expected.
CONFIG_KEYS: dict[str, Callable[[str], Any]] = {
    "server": _text,
    "state_dir": _text,
    "ca_file": _text,
    "insecure_http": _yes_no,
    "reboot_command": _text,
    "backend": _one_of(backends.NAMES),
    "package_root": _text,
    "dnf_options": _text,
    "role": _one_of(ROLES),
    "labels": _labels,
    "install_timeout": _seconds(),
    "script_timeout": _seconds(),
    "lock_timeout": _seconds(zero="do not wait for the lock"),
    "scan_interval": _seconds(),
    "max_backoff": _seconds(),
}


CONFIG_ENV = "PATCHCTL_AGENT_CONFIG"  # the agent.conf to read when --config is not given


class UsageError(Exception):
    """A mistake in the options or agent.conf (exit 2)."""


def default_config() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))
        return base / "patchctl-agent" / "agent.conf"
    return Path("/etc/patchctl-agent/agent.conf")


def read_config(path: str | None) -> dict[str, Any]:
    """The `[agent]` section of agent.conf, typed; UsageError names the file and the key.
    The file is `path` (--config), else the one PATCHCTL_AGENT_CONFIG names, else
    `default_config()`. A missing default file is no configuration; a missing file that
    --config or PATCHCTL_AGENT_CONFIG names is an error naming which."""
    named = ("--config", path) if path else (CONFIG_ENV, os.environ.get(CONFIG_ENV))
    chosen = Path(named[1]) if named[1] else default_config()
    if not chosen.exists():
        if named[1]:
            raise UsageError(f"{named[0]}: {chosen} does not exist")
        return {}
    parser = _parsed(chosen)
    unknown_sections = [s for s in parser.sections() if s != "agent"]
    if unknown_sections:
        raise UsageError(f"{chosen}: unknown section [{unknown_sections[0]}] (expected [agent])")
    if not parser.has_section("agent"):
        return {}
    return {key: _value(chosen, key, raw) for key, raw in parser.items("agent")}


def _parsed(chosen: Path) -> configparser.ConfigParser:
    # No section is special: configparser's [DEFAULT] would pass its keys into [agent]
    # unchecked and stay out of sections(); named "" (no header spells it), it is unknown.
    parser = configparser.ConfigParser(interpolation=None, default_section="")
    try:  # not parser.read(), which passes over a file it cannot open (a folder, no permission)
        with chosen.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise UsageError(f"{chosen}: cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{chosen}: not UTF-8 text (byte {exc.start})") from exc
    except configparser.Error as exc:
        raise UsageError(f"{chosen}: {exc}") from exc
    return parser


def _value(chosen: Path, key: str, raw: str) -> Any:
    """One key's value, typed by its reader; UsageError naming the file, section and key."""
    read = CONFIG_KEYS.get(key)
    if read is None:
        known = ", ".join(CONFIG_KEYS)
        raise UsageError(f"{chosen}: [agent] {key}: unknown key (expected one of {known})")
    try:
        return read(raw)
    except ValueError as exc:
        raise UsageError(f"{chosen}: [agent] {key}: {exc}") from exc


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """`key=value` items, each of them one or several separated by commas; ValueError saying
    which part is wrong."""
    labels: dict[str, str] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{part!r} is not key=value")
            labels[protocol.check_label_key(key.strip())] = value.strip()
    return labels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchctl-agent",
        description="The patchctl agent: reports this machine's updates, installs approved ones.",
        epilog="Exit codes: 0 success, 1 job failed or refused, 2 usage/config error, "
        "3 controller unreachable, 4 package manager error.",
    )
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    _config_option(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    enroll = commands.add_parser("enroll", help="enrol this machine with a controller")
    enroll.add_argument(
        "--server", type=_given, help="the controller's URL (https://..., http:// to loopback)"
    )
    enroll.add_argument(
        "--enrollment-token",
        type=_given,
        help="the tenant's enrolment token (or PATCHCTL_ENROLLMENT_TOKEN, --enrollment-token-file)",
    )
    enroll.add_argument(
        "--enrollment-token-file", type=_given, help="read the enrolment token from this file"
    )
    enroll.add_argument(
        "--hostname",
        type=_given,
        help="the device name to enrol as, a host name such as web-01 or realhost.example.org "
        "(default: this host's)",
    )
    enroll.add_argument("--role", choices=ROLES, help="server, workstation or gateway")
    enroll.add_argument(
        "--label",
        action="append",
        default=[],
        help="key=value (repeatable; a key such as env or example.org/site)",
    )
    enroll.add_argument(
        "--replace",
        action="store_true",
        help="this machine replaces the one enrolled under the hostname (another machine id); "
        "without it the controller refuses such an enrolment",
    )
    _common(enroll)

    run = commands.add_parser("run", help="report, poll and run jobs (the service)")
    run.add_argument("--once", action="store_true", help="one full cycle, then exit")
    run.add_argument(
        "--reboot-command",
        type=_given,
        help=f"how to reboot (default: {_shown(agent.DEFAULT_REBOOT_COMMAND)})",
    )
    _common(run)

    scan = commands.add_parser("scan", help="print what the agent would report")
    scan.add_argument("--json", action="store_true", help="the report body as JSON")
    _backend_option(scan)
    _command_options(scan)

    status = commands.add_parser("status", help="enrolment, queued events and recent jobs")
    status.add_argument("--json", action="store_true")
    _command_options(status)
    return parser


def _config_option(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """--config, before the command or after it (`run --config FILE`, as the systemd unit
    writes it): a command's parser leaves the value alone unless it is given there."""
    parser.add_argument(
        "--config",
        default=default,
        type=_given,
        help=f"agent.conf to read (default: ${CONFIG_ENV}, else {_shown(default_config())};"
        " a missing default file is no configuration)",
    )


def _shown(value: object) -> str:
    """A default as argparse help shows it (`%` is its format character)."""
    return str(value).replace("%", "%%")


def _command_options(parser: argparse.ArgumentParser) -> None:
    """What every command takes: --config (also accepted before the command) and --state-dir."""
    _config_option(parser, default=argparse.SUPPRESS)
    parser.add_argument(
        "--state-dir",
        type=_given,
        help=f"where the agent keeps its state (default: {_shown(default_state_dir())})",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    _command_options(parser)
    parser.add_argument(
        "--ca-file", type=_given, help="CA bundle for the controller's TLS certificate"
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        default=None,
        help="allow plain http:// to a host that is not loopback (sends the token in clear)",
    )
    _backend_option(parser)


def _backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=backends.NAMES, help="the package manager (default: auto)"
    )


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one exit per error type
    args = build_parser().parse_args(argv)
    try:
        config = read_config(args.config)
        command = {"enroll": cmd_enroll, "run": cmd_run, "scan": cmd_scan, "status": cmd_status}
        code = command[args.command](args, config)
        sys.stdout.flush()  # here, so that a reader gone by now is caught below too
    except BrokenPipeError:  # `status | head`: the reader went away, as for any Unix tool
        if not _stdout_gone():  # another pipe (a package manager's): not the reader's doing
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_READER_GONE
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except StateError as exc:
        return fail(str(exc), EXIT_USAGE)
    except protocol.RefusedError as exc:
        return fail(str(exc), EXIT_NO)
    except wire.WireError as exc:
        return fail(f"controller unreachable: {exc}", EXIT_UNREACHABLE)
    except backends.BackendError as exc:
        return fail(str(exc), EXIT_BACKEND)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_NO)
    return code


def _stdout_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (POLLERR on its write end;
    where there is no poll(), as on Windows, assumed)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def fail(message: str, code: int) -> int:
    print(f"patchctl-agent: {message}", file=sys.stderr)  # noqa: T201
    return code


def _option(args: argparse.Namespace, config: dict[str, Any], name: str, *, default: Any) -> Any:
    value = getattr(args, name, None)
    if value is not None:
        return value
    return config.get(name, default)


def _given_as(args: argparse.Namespace, name: str) -> str:
    """Where option `name` was given, for a message: its flag, else its agent.conf key."""
    if getattr(args, name, None) is not None:
        return "--" + name.replace("_", "-")
    return f"{name} in agent.conf"


def _ca_file(
    args: argparse.Namespace, config: dict[str, Any], *, default: str | None
) -> str | None:
    """The CA bundle to trust (--ca-file, agent.conf's ca_file, else `default`); UsageError
    when it names no file: checked before the first request, so that a typo is a usage error
    (exit 2), not an unreachable controller (exit 3)."""
    ca_file: str | None = _option(args, config, "ca_file", default=default)
    if ca_file and not Path(ca_file).is_file():
        given = args.ca_file is not None or "ca_file" in config
        where = _given_as(args, "ca_file") if given else "the enrolment's caFile"
        raise UsageError(f"{where}: {ca_file} is not a file")
    return ca_file


def _state(args: argparse.Namespace, config: dict[str, Any]) -> State:
    return State(Path(_option(args, config, "state_dir", default=default_state_dir())))


def _settings(args: argparse.Namespace, config: dict[str, Any]) -> agent.Settings:
    defaults = agent.Settings()
    return agent.Settings(
        reboot_command=_option(args, config, "reboot_command", default=defaults.reboot_command),
        install_timeout=config.get("install_timeout", defaults.install_timeout),
        script_timeout=config.get("script_timeout", defaults.script_timeout),
        scan_interval=config.get("scan_interval", defaults.scan_interval),
        max_backoff=config.get("max_backoff", defaults.max_backoff),
        role=config.get("role", defaults.role),
        labels=config.get("labels", defaults.labels),
    )


def _backend(args: argparse.Namespace, config: dict[str, Any]) -> backends.Backend:
    name = _option(args, config, "backend", default="auto")
    root = config.get("package_root")
    if root or config.get("dnf_options"):
        backend = _rooted_backend(name, root, config.get("dnf_options", "").split())
    else:
        backend = backends.detect(name)
    if "lock_timeout" in config and hasattr(backend, "lock_timeout"):
        backend.lock_timeout = config["lock_timeout"]
    return backend


def _rooted_backend(name: str, root: str | None, options: list[str]) -> backends.Backend:
    """A backend working on another root than / (`package_root`: images, and the tests)."""
    if name not in ("dnf", "yum"):
        raise UsageError(
            f"agent.conf: package_root and dnf_options need backend = dnf or yum, not {name}"
        )
    from patchctl_agent.backends import dnf  # noqa: PLC0415 - only the chosen backend loads

    if root:
        options = [f"--installroot={root}", *options]
    return dnf.DnfBackend(
        tool=name,
        root=Path(root or "/"),
        options=options,
        rpm_options=[f"--root={root}"] if root else [],
    )


# --- commands ------------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace, config: dict[str, Any]) -> int:
    server = _option(args, config, "server", default=None)
    if not server:
        raise UsageError("enroll: --server is required (or server= in agent.conf)")
    insecure = bool(_option(args, config, "insecure_http", default=False))
    try:
        server = wire.check_server_url(server, insecure_http=insecure)
    except ValueError as exc:
        raise UsageError(f"{_given_as(args, 'server')}: {exc}") from exc
    secret = _enrollment_token(args)
    hostname = _hostname(args)
    ca_file = _ca_file(args, config, default=None)
    state = _state(args, config)
    backend = _backend(args, config)
    settings = _settings(args, config)
    labels = dict(settings.labels)
    try:
        labels.update(parse_labels(args.label))
    except ValueError as exc:
        raise UsageError(f"--label: {exc}") from exc
    body = {
        "enrollmentToken": secret,
        "hostname": hostname,
        "os": backend.os_info().to_json(),
        "agentVersion": AGENT_VERSION,
        "role": args.role or settings.role,
        "labels": labels,
        "machineId": agent.machine_identity(backend, state),
    }
    if args.replace:
        body["replaceMachine"] = True
    answer = protocol.Controller(server, ca_file=ca_file).enroll(body)
    device_id, token = str(answer.get("deviceId") or ""), str(answer.get("deviceToken") or "")
    if not device_id or not token:
        raise wire.WireError("the enrolment answer lacks deviceId or deviceToken")
    enrolment = {
        "server": server,
        "deviceId": device_id,
        "hostname": hostname,
        "caFile": ca_file,
        "insecureHttp": insecure,
        "role": args.role or settings.role,
        "labels": labels,
        "pollInterval": answer.get("pollInterval"),
        "enrolledAt": agent.utc_now(),
    }
    state.save_enrolment(enrolment, token)
    print(f"enrolled {hostname} as device {device_id} with {server}")  # noqa: T201
    return EXIT_OK


def _hostname(args: argparse.Namespace) -> str:
    """--hostname, else this host's name, as the controller will take it."""
    where = "--hostname" if args.hostname else "this host's name (give --hostname)"
    try:
        return protocol.check_hostname(args.hostname or agent.default_hostname())
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def _enrollment_token(args: argparse.Namespace) -> str:
    if args.enrollment_token_file:
        try:
            secret = Path(args.enrollment_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--enrollment-token-file: {exc.strerror}") from exc
    else:
        secret = args.enrollment_token or os.environ.get("PATCHCTL_ENROLLMENT_TOKEN", "")
    if not secret:
        raise UsageError(
            "enroll: --enrollment-token (or PATCHCTL_ENROLLMENT_TOKEN, --enrollment-token-file) "
            "is required"
        )
    return secret


def cmd_run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    state = _state(args, config)
    enrolment = state.enrolment()
    if enrolment is None:
        raise UsageError(f"not enrolled: no {state.enrolment_path}; run `patchctl-agent enroll`")
    settings = _settings(args, config)
    settings = settings._replace(
        role=str(enrolment.get("role") or settings.role),
        labels=dict(enrolment.get("labels") or settings.labels),
    )
    ca_file = _ca_file(args, config, default=enrolment.get("caFile"))
    controller = protocol.Controller(str(enrolment["server"]), token=state.token(), ca_file=ca_file)
    worker = agent.Agent(
        state=state,
        backend=_backend(args, config),
        controller=controller,
        device_id=str(enrolment["deviceId"]),
        hostname=str(enrolment["hostname"]),
        settings=settings,
    )
    worker.take_poll_interval(enrolment)
    return worker.run(once=args.once)


def cmd_scan(args: argparse.Namespace, config: dict[str, Any]) -> int:
    state = _state(args, config)
    enrolment = state.enrolment() or {}
    backend = _backend(args, config)
    settings = _settings(args, config)
    worker = agent.Agent(
        state=state,
        backend=backend,
        controller=protocol.Controller("http://127.0.0.1"),  # never called by a scan
        device_id=str(enrolment.get("deviceId") or ""),
        hostname=str(enrolment.get("hostname") or agent.default_hostname()),
        settings=settings,
        read_only=True,
    )
    result = backend.scan()
    body = worker.report_body(result)
    if args.json:
        print(wire.dumps(body))  # noqa: T201
        return EXIT_OK
    facts = body["facts"]
    os_info = facts["os"]
    packages = len(result.inventory.packages) if result.inventory else 0
    print(f"{facts['hostname']}: {os_info['name']} {os_info['version']} ({backend.name})")  # noqa: T201
    print(f"machine id: {facts.get('machineId') or 'none yet (made at enrolment)'}")  # noqa: T201
    print(f"packages: {packages}; reboot required: {'yes' if result.reboot_required else 'no'}")  # noqa: T201
    print(f"missing updates: {len(result.missing)}")  # noqa: T201
    for update in result.missing:
        print(f"  {update.id}  {update.classification or ''}")  # noqa: T201
    return EXIT_OK


def cmd_status(args: argparse.Namespace, config: dict[str, Any]) -> int:
    state = _state(args, config)
    enrolment = state.enrolment()
    jobs = [
        {
            "id": j["job"].get("id"),
            "kind": j["job"].get("kind"),
            "phase": j.get("phase"),
            "startedAt": j.get("startedAt"),
            "finishedAt": j.get("finishedAt"),
        }
        for j in state.journals()
    ]
    summary = {
        "agentVersion": VERSION,
        "stateDir": str(state.root),
        "enrolled": enrolment is not None,
        "server": (enrolment or {}).get("server"),
        "deviceId": (enrolment or {}).get("deviceId"),
        "hostname": (enrolment or {}).get("hostname"),
        "enrolledAt": (enrolment or {}).get("enrolledAt"),
        "token": "present" if state.token_path.exists() else "missing",
        "queuedEvents": state.outbox_size(),
        "jobs": jobs,
    }
    if args.json:
        print(wire.dumps(summary))  # noqa: T201
    else:
        for key in (
            "stateDir",
            "enrolled",
            "server",
            "deviceId",
            "hostname",
            "enrolledAt",
            "token",
            "queuedEvents",
        ):
            print(f"{key}: {summary[key]}")  # noqa: T201
        for job in jobs:
            print(f"job {job['id']} ({job['kind']}): {job['phase']}")  # noqa: T201
    return EXIT_OK if enrolment is not None else EXIT_USAGE
