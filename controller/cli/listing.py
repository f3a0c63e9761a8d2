"""Tables for the fleet listings (`devices`, `jobs`, `alerts`): one shape for local and remote rows.

Rows are the read API's (camelCase keys, ISO 8601 times), whether they come from the database
(`controller.runtime.listings`) or from a running service, so `--json` prints the same document
either way. A listing prints at most `--limit` rows; when more matched it says so on stderr (for
tables and for `--json` alike: the JSON document stays the list of rows, and the exit code 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from controller.cli import remote
from controller.cli.common import print_json

if TYPE_CHECKING:
    from controller.runtime.listings import Page

F = TypeVar("F", bound=Callable[..., Any])
Column = tuple[str, Callable[[dict[str, Any]], Any]]
"""A table column: its header and the cell's value from a row (read API shape)."""

DEFAULT_LIMIT = 200
MAX_LIMIT = 5000  # the read API's largest page


def limit_option(func: F) -> F:
    """--limit N (1..5000, default 200)."""
    return click.option(
        "--limit",
        type=click.IntRange(1, MAX_LIMIT),
        default=DEFAULT_LIMIT,
        show_default=True,
        metavar="N",
        help=f"Show at most N rows (at most {MAX_LIMIT}); a line on stderr says when more "
        "matched (also with --json, whose output stays the list of rows).",
    )(func)


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    """A column that shows one field of the row as it is."""
    return lambda row: row.get(name)


def print_listing(
    page: Page, columns: tuple[Column, ...], *, as_json: bool, noun: str, limit: int
) -> None:
    """Print the rows of `page` as JSON or as a table, then the truncation note if any."""
    if as_json:
        print_json(page.rows)
    else:
        table = [[cell(value(row)) for _, value in columns] for row in page.rows]
        widths = [max([len(h)] + [len(r[i]) for r in table]) for i, (h, _) in enumerate(columns)]
        click.echo(
            "  ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip()
        )
        for cells in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    if page.truncated:
        click.echo(
            f"patchctl: showing the first {limit} {noun}; more match (raise --limit, at most "
            f"{MAX_LIMIT}, or narrow the listing)",
            err=True,
        )


def remote_page(
    server: str, path: str, key: str, *, ca_file: Path | None, params: dict[str, Any]
) -> Page:
    """The rows under `key` of a read API answer, and its `truncated` flag."""
    from controller.runtime.listings import Page  # noqa: PLC0415 - keep --help fast

    answer = remote.get(server, path, ca_file=ca_file, params=params)
    return Page(list(answer[key]), bool(answer.get("truncated")))


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def cell(value: Any) -> str:
    """One table cell: times to the minute in UTC (`Z`), short lists inline, long ones counted,
    booleans as yes/no."""
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if len(value) <= 3 else f"{len(value)} items"
    return "" if value is None else str(value)


def stamp(moment: datetime) -> str:
    """`2026-12-06 01:00Z` for a UTC time; other offsets keep theirs (`+01:00`)."""
    offset = moment.utcoffset()
    if offset is None or not offset:
        return moment.strftime("%Y-%m-%d %H:%MZ")
    return moment.strftime("%Y-%m-%d %H:%M") + moment.isoformat()[-6:]


def results_cell(row: dict[str, Any]) -> str:
    """Per-patch results of a job: `KB1 installed, KB2 failed`; beyond three patches, counted
    by result (`5 installed, 1 failed`)."""
    results = row.get("results") or {}
    if not isinstance(results, dict) or not results:
        return ""
    outcomes = {
        patch: (entry.get("result") if isinstance(entry, dict) else None) or "?"
        for patch, entry in results.items()
    }
    if len(outcomes) <= 3:
        return ", ".join(f"{patch} {result}" for patch, result in outcomes.items())
    counts: dict[str, int] = {}
    for result in outcomes.values():
        counts[result] = counts.get(result, 0) + 1
    return ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
