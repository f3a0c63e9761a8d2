"""The configuration file, `patchctl.toml`: read once per command, validated as a whole.

```toml
state-dir = "/var/lib/patchctl"        # a top-level option applies to every command that has it
db = "postgresql+psycopg://patchctl@db/patchctl"

[serve]                                # a table per command: that command's options
listen = "0.0.0.0:8080"
interval = "2m"

[token.create]                         # sub-commands nest
kind = "read"

[access]                               # server tables, parsed by their owners:
[smtp]                                 #   runtime.access, notify.settings, runtime.feeds,
[feeds]                                #   forges.settings
[forge]
```

Keys are option names as written on the command line, without the dashes (`state-dir`,
`db`, `no-watch` is not a key: write `watch = false`). Every key must mean something: an unknown
command, option or table is an error naming the key path, so a typo never silently does nothing
(issue 12). Option values are checked by the command itself, exactly like the same value given
on the command line; precedence is command line, then environment variable, then this file,
then the built-in default (click's `default_map`).

The file is `./patchctl.toml`, or `--config FILE` / `PATCHCTL_CONFIG`.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from controller import errors

CONFIG_FILE = Path("patchctl.toml")
CONFIG_ENV = "PATCHCTL_CONFIG"
# Server settings that are not command options, each validated by the module that owns it.
SERVER_TABLES = ("access", "smtp", "feeds", "lease", "forge")


class ConfigError(errors.ConfigurationError):
    """The configuration file cannot be used; the message names the file and the key path."""


@dataclass(frozen=True, slots=True)
class Config:
    """One command's view of the configuration file.

    `defaults` is click's `default_map` (command name → option name → value, nested for
    sub-commands); `tables` holds the server tables by name; `path` is the file read (None: no
    file, every table empty)."""

    path: Path | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> Mapping[str, Any] | None:
        """A server table (`access`, `smtp`, `feeds`, `lease`, `forge`), or None when absent."""
        if name not in SERVER_TABLES:
            raise KeyError(name)
        return self.tables.get(name)

    @property
    def source(self) -> str:
        """How messages name the file."""
        return str(self.path) if self.path is not None else str(CONFIG_FILE)

    @property
    def base_dir(self) -> Path:
        """Relative paths inside the file (key files) are relative to the file's folder."""
        return self.path.parent if self.path is not None else Path()


def load(path: Path | None, *, cli: click.Group, required: bool = False) -> Config:
    """Read and validate the configuration against the commands of `cli`.

    `path` None: `./patchctl.toml` when it exists, else an empty configuration. `required`:
    the file was named explicitly, so a missing one is an error. Raises ConfigError.
    """
    chosen = path if path is not None else CONFIG_FILE
    if not chosen.is_file():
        if required:
            raise ConfigError(f"{chosen}: no such configuration file")
        return Config()
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{chosen}: {exc}") from None
    tables: dict[str, Mapping[str, Any]] = {}
    for name in SERVER_TABLES:
        value = data.pop(name, None)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{chosen}: {name}: expected a table ([{name}])")
        tables[name] = value
    return Config(chosen, _defaults(data, cli, source=str(chosen)), tables)


def _defaults(data: Mapping[str, Any], cli: click.Group, *, source: str) -> dict[str, Any]:
    """click's default_map from the file: command tables, and top-level options copied into
    every command that has them (a command's own table wins)."""
    commands = {name: cmd for name, cmd in _subcommands(cli).items() if not cmd.hidden}
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in commands:
                raise ConfigError(_unknown(source, key, "command or table", commands))
            defaults[key] = _command_defaults(commands[key], value, source=source, path=key)
    used = set()
    for name, command in _leaves(cli):
        options = _option_names(command)
        table = _nested(defaults, name)
        for key, value in shared.items():
            if key in options:
                used.add(key)
                table.setdefault(options[key], value)
    for key in shared.keys() - used:
        known = sorted({o for _, c in _leaves(cli) for o in _option_names(c)})
        raise ConfigError(_unknown(source, key, "option of any command", known))
    return defaults


def _command_defaults(
    command: click.Command, table: Mapping[str, Any], *, source: str, path: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(command, click.Group):
        # A group's table holds its sub-commands' tables and, for a group that lists on its
        # own (`patchctl jobs`), its own options.
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        for key, value in subtables.items():
            sub = command.commands.get(key)
            if sub is None:
                raise ConfigError(
                    _unknown(source, f"{path}.{key}", "sub-command table", command.commands)
                )
            out[key] = _command_defaults(sub, value, source=source, path=f"{path}.{key}")
        table = {k: v for k, v in table.items() if k not in subtables}
        if table and not _option_names(command):
            key = next(iter(table))
            raise ConfigError(
                _unknown(source, f"{path}.{key}", "sub-command table", command.commands)
            )
    options = _option_names(command)
    for key, value in table.items():
        if key not in options:
            raise ConfigError(
                _unknown(source, f"{path}.{key}", f"option of `patchctl {path}`", options)
            )
        out[options[key]] = value
    return out


def _option_names(command: click.Command) -> dict[str, str]:
    """Key as written in the file (the long flag without dashes; the parameter's name only
    for an option without one) → the parameter's name, which click's default_map uses. The
    name behind a long flag is the code's, not the user's (`--json` is `as_json`): it is no
    key, so one setting has one spelling, the one `--help` and docs/configuration.md show."""
    names: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None or param.hidden:
            continue
        long_flags = [flag[2:] for flag in param.opts if flag.startswith("--")]
        for key in long_flags or [param.name.replace("_", "-")]:
            names[key] = param.name
    names.pop("help", None)
    return names


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in _subcommands(group).items():
        if not isinstance(command, click.Group):
            found.append(((*prefix, name), command))
            continue
        if _option_names(command):  # a group that also runs on its own, with options
            found.append(((*prefix, name), command))
        found += _leaves(command, (*prefix, name))
    return found


def _subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's commands through click's own API, so a lazily loaded group loads them all."""
    ctx = click.Context(group)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def _nested(defaults: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    table = defaults
    for part in path:
        table = table.setdefault(part, {})
    return table


def _unknown(source: str, key: str, what: str, known: Any) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(key.rpartition(".")[2], names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{source}: {key}: not a known {what}{hint} (known: {', '.join(names)})"


def reference(cli: click.Group) -> str:
    """Every key of the file as a Markdown table per command: key, environment variable,
    default and help (the generated part of docs/configuration.md; a test keeps them equal)."""
    lines: list[str] = []
    for path, command in sorted(_leaves(cli)):
        table = ".".join(path)
        rows = []
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden or param.name == "help":
                continue
            key = next((f[2:] for f in param.opts if f.startswith("--")), param.name or "")
            env = param.envvar if isinstance(param.envvar, str) else None
            shown = "" if param.default is None or callable(param.default) else param.default
            text = " ".join((param.help or "").split()).replace("|", "\\|")
            rows.append(f"| `{key}` | {f'`{env}`' if env else ''} | {_cell(shown)} | {text} |")
        if rows:
            lines += [f"### `[{table}]`", "", "| key | environment | default | meaning |"]
            lines += ["|---|---|---|---|", *rows, ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A default as the file would spell it; nothing for computed or machine-specific ones."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path) and not value.is_absolute():
        value = str(value)
    if not isinstance(value, str | int | float) or value == "":
        return ""
    return f"`{value}`".replace("|", "\\|")
