"""SMTP settings for email channels: a `[smtp]` table of `patchctl.toml` (never in the policy).

```toml
[smtp]
host = "mail.example.com"
port = 587
from = "patchctl@example.com"
starttls = true            # or ssl = true for implicit TLS (port 465)
user = "patchctl"
password_env = "PATCHCTL_SMTP_PASSWORD"   # the password itself stays in the environment
timeout = 10
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import errors
from controller.kinds.common import check_email_address

CONFIG_FILE = Path("patchctl.toml")
_KEYS = {"host", "port", "from", "starttls", "ssl", "user", "password_env", "timeout"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    """Where email notifications are sent from; validated at construction."""

    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    ssl: bool = False  # implicit TLS from the first byte (SMTPS, usually port 465)
    user: str | None = None
    password_env: str | None = None  # the environment variable holding the password
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("smtp.host is required")
        try:
            check_email_address(self.sender)
        except ValueError as exc:
            raise ValueError(f"smtp.from {exc}") from None
        if not 0 < self.port < 65536:
            raise ValueError(f"smtp.port {self.port} is not between 1 and 65535")
        if self.ssl and self.starttls:
            raise ValueError("set smtp.ssl or smtp.starttls, not both")
        if self.user and not self.password_env:
            raise ValueError("smtp.user needs smtp.password_env (the password is never in a file)")
        if self.timeout <= 0:
            raise ValueError("smtp.timeout must be positive")


class SettingsError(errors.ConfigurationError):
    """The `[smtp]` table cannot be used; the message names the file and the key."""


def smtp_settings(table: Mapping[str, Any]) -> SmtpSettings:
    """Settings from the `[smtp]` table's values; ValueError names the key at fault."""
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(
            f"unknown smtp key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    user = _typed(table, "user", str, None)
    password_env = _typed(table, "password_env", str, None)
    return SmtpSettings(
        host=_typed(table, "host", str, ""),
        sender=_typed(table, "from", str, ""),
        port=_typed(table, "port", int, 25),
        starttls=_typed(table, "starttls", bool, False),  # noqa: FBT003 - a default value
        ssl=_typed(table, "ssl", bool, False),  # noqa: FBT003 - a default value
        user=user or None,
        password_env=password_env or None,
        timeout=float(_typed(table, "timeout", (int, float), 10.0)),
    )


def _typed(table: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = table.get(key, default)
    if value is default:
        return value
    # TOML `true` is an int to Python, but not a port number
    wrong_bool = isinstance(value, bool) and kind is not bool
    if wrong_bool or not isinstance(value, kind):
        raise ValueError(f"smtp.{key} must be {_KIND_NAMES.get(kind, 'a number')}")
    return value


_KIND_NAMES: dict[Any, str] = {str: "a string", int: "an integer", bool: "true or false"}


def load_smtp_settings(path: Path = CONFIG_FILE) -> SmtpSettings | None:
    """The `[smtp]` table of a `patchctl.toml`; None when the file or the table is absent."""
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    table = config.get("smtp")
    if table is not None and not isinstance(table, dict):
        raise SettingsError(f"{path}: smtp must be a table ([smtp])")
    return smtp_from_table(table, source=str(path))


def smtp_from_table(table: Mapping[str, Any] | None, *, source: str) -> SmtpSettings | None:
    """Settings from an `[smtp]` table already read (`controller.config`); None when absent.
    SettingsError names the file and the key."""
    if table is None:
        return None
    try:
        return smtp_settings(table)
    except ValueError as exc:
        raise SettingsError(f"{source}: [smtp]: {exc}") from None
