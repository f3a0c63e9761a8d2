"""`patchctl feed import` and `patchctl patches`: the patch catalogue."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from controller.cli import remote
from controller.cli.common import EXIT_NO, fail, json_option, print_json
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options
from controller.runtime.settings import REEVALUATION_CHUNK
from controller.vocabularies import FeedFormat, OsFamily

if TYPE_CHECKING:
    from controller.runtime.feeds import Progress
    from controller.store.findings import FleetEvaluation


@click.group()
def feed() -> None:
    """Patch feeds: import vendor advisories into the catalogue."""


@feed.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in FeedFormat]),
    required=True,
    help="Record format of PATH (a file, or a directory imported recursively). "
    "debian-security: a directory with the security tracker's DSA/list, DLA/list and its JSON "
    "(per-CVE urgency), imported together (docs/feeds.md).",
)
@click.option("--release", default=None, help="OS release for deb-packages, e.g. debian:12.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=REEVALUATION_CHUNK,
    show_default=True,
    metavar="N",
    help="Devices re-evaluated per write transaction: agent reports are written between two.",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress line on stderr while the fleet is evaluated."
)
@store_options
@json_option
def import_feed(
    path: Path,
    fmt: str,
    release: str | None,
    chunk_size: int,
    quiet: bool,
    db_url: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Import PATH into the catalogue and print how many records were new, updated or failed.

    When the catalogue changed, the feed findings of every device that reported a package
    inventory are then recomputed, --chunk-size devices per write transaction (the service's
    agent reports are not held up), and their counts printed; an import stopped midway is
    completed by the next one. While that runs longer than a second, stderr shows devices
    evaluated / total and the rate when it is a terminal and --quiet is not given (stdout,
    and so --json, is unaffected). Re-importing is idempotent; an updated advisory updates its
    record. Malformed documents and records are reported with their file and position (a
    record with several errors is listed once per error and counted once as failed) and the
    rest still lands; records that import but can match no host (an advisory without a
    resolvable package) are reported as warnings. Exit 1 when any error was reported, 0
    otherwise (warnings do not fail); exit 2, importing nothing, when PATH is a directory
    holding no file of the format (an empty mirror, or the wrong --format).
    """
    from controller.feeds import read_feed  # noqa: PLC0415 - keep --help fast
    from controller.runtime import feeds as runtime_feeds  # noqa: PLC0415

    if fmt == FeedFormat.DEB_PACKAGES and not release:
        fail("--release is required for deb-packages (e.g. --release debian:12)")
    result = read_feed(path, FeedFormat(fmt), release=release)
    if result.documents == 0:
        fail(str(result.errors[0]))  # an empty mirror or the wrong --format: say so, change nothing
    store = open_store_or_fail(db_url, state_dir, create=True)
    progress = ProgressLine(sys.stderr, enabled=not quiet and sys.stderr.isatty())
    try:
        outcome = runtime_feeds.import_records(
            store, result, now=datetime.now(tz=UTC), chunk_size=chunk_size, on_progress=progress
        )
    finally:
        progress.close()
    if as_json:
        print_json(outcome.as_dict())
    else:
        for error in result.errors:
            click.echo(str(error), err=True)
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        warned = f", {len(result.warnings)} warnings" if result.warnings else ""
        click.echo(
            f"{path}: {outcome.new} new, {outcome.updated} updated, {outcome.unchanged} "
            f"unchanged, {outcome.failed} failed{warned}"
        )
        click.echo(_fleet_line(outcome.fleet, complete=outcome.fleet_complete))
    raise SystemExit(EXIT_NO if result.errors else 0)


def _fleet_line(fleet: FleetEvaluation | None, *, complete: bool = True) -> str:
    if fleet is None:
        return "fleet: catalogue unchanged, findings not recomputed"
    stopped = (
        "" if complete else " (stopped: a newer import changed the catalogue and re-evaluates)"
    )
    return (
        f"fleet: {fleet.devices} inventories re-evaluated, {fleet.covered} covered by the "
        f"catalogue, {fleet.affected} missing patches ({fleet.findings} findings), "
        f"{fleet.changed} changed{stopped}"
    )


class ProgressLine:
    """The fleet pass's progress on a terminal, rewritten in place: silent for the first
    `after` seconds (short runs print nothing) and at most once per `every` seconds."""

    def __init__(
        self, stream: IO[str], *, enabled: bool, after: float = 1.0, every: float = 0.25
    ) -> None:
        self.stream, self.enabled, self.after, self.every = stream, enabled, after, every
        self.shown = False
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        if not self.enabled or progress.seconds < self.after:
            return
        if (
            self.shown
            and progress.seconds - self.last < self.every
            and progress.done < progress.total
        ):
            return
        self.last, self.shown = progress.seconds, True
        self.stream.write(f"\r{self.describe(progress)}\x1b[K")
        self.stream.flush()

    @staticmethod
    def describe(progress: Progress) -> str:
        """`fleet: 12,000/100,000 devices evaluated (4,100/s)`."""
        return (
            f"fleet: {progress.done:,}/{progress.total:,} devices evaluated "
            f"({progress.rate:,.0f}/s)"
        )

    def close(self) -> None:
        """End the line, if one was shown."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


PATCH_LIMIT = 100_000


@click.command()
@click.option(
    "--os",
    "os_family",
    type=click.Choice([o.value for o in OsFamily]),
    default=None,
    help="Only patches of this OS family.",
)
@click.option(
    "--search", default=None, help="Case-insensitive text in the id, title, product or CVEs."
)
@click.option(
    "--limit",
    type=click.IntRange(1, PATCH_LIMIT),
    default=200,
    show_default=True,
    metavar="N",
    help=f"Show at most N entries (at most {PATCH_LIMIT:,}); stderr says how many matched "
    "(also with --json, whose output stays the list of entries).",
)
@store_options
@server_options
@json_option
def patches(
    os_family: str | None,
    search: str | None,
    limit: int,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """The patch catalogue by id: one entry per patch id, with its severity, classification,
    release date, title and affected products.

    With --server, from a running service (`GET /api/v1/patches`; the catalogue holds public
    advisories and is the same for every tenant). A line on stderr says how many entries
    matched and, when --limit cut the list, that it did. Exit 0, or 2 on usage or I/O errors."""
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast

    if server:
        answer = remote.get(
            server,
            "/api/v1/patches",
            ca_file=ca_file,
            params={"os": os_family, "search": search, "limit": limit},
        )
        page = listings.CataloguePage(answer["patches"], answer["matched"], answer["total"])
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            page = listings.patches(
                conn, os=OsFamily(os_family) if os_family else None, search=search, limit=limit
            )
    if as_json:
        print_json(page.rows)
    else:
        for entry in page.rows:
            products = ", ".join(entry["products"]) or "-"
            click.echo(
                f"{entry['id']:<28} {entry['severity']:<11} {entry['classification']:<12} "
                f"{entry['released'] or '':<10}  {entry['title'][:60]}  [{products[:60]}]"
            )
    cut = f"; showing the first {limit} (raise --limit)" if page.truncated else ""
    click.echo(f"{page.matched} of {page.total} patches match{cut}", err=True)


def register(main: click.Group) -> None:
    main.add_command(feed)
    main.add_command(patches)
