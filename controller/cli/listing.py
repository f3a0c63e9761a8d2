"""Tables for the fleet listings (`devices`, `jobs`, `alerts`): one shape for local and remote rows.

Rows come either from the store (snake_case keys, datetimes) or from the read API (camelCase keys,
ISO 8601 strings); both print through the same columns, and `--json` prints the rows as given.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from controller.cli import remote
from controller.cli.common import print_json


def print_listing(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    """Print `rows` as JSON or as a table of `columns` (snake_case names)."""
    if as_json:
        print_json(rows)
        return
    rows = [local_shape(row) for row in rows]
    widths = {c: max([len(c)] + [len(cell(r.get(c))) for r in rows]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(cell(row.get(c)).ljust(widths[c]) for c in columns))


def local_shape(row: dict[str, Any]) -> dict[str, Any]:
    """A read API row (camelCase keys, ISO times) in the store's shape, for one table format."""
    shaped = {}
    for key, value in row.items():
        name = re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), key)
        if isinstance(value, str) and _ISO_TIME.match(value):
            value = datetime.fromisoformat(value)  # noqa: PLW2901 - the converted cell
        shaped[name] = value
    return shaped


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def remote_rows(
    server: str, path: str, key: str, *, ca_file: Path | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The list under `key` of a read API answer."""
    rows: list[dict[str, Any]] = remote.get(server, path, ca_file=ca_file, params=params)[key]
    return rows


def cell(value: Any) -> str:
    """One table cell: times to the minute, short lists inline, long ones counted."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if len(value) <= 3 else f"{len(value)} items"
    return "" if value is None else str(value)
