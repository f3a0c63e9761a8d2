"""`patchctl plan`: what merging a pull request's head would change, for a PR comment."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from controller.cli import remote
from controller.cli.common import EXIT_NO, fail, source_options
from controller.cli.operate import now_option
from controller.cli.remote import server_options
from controller.cli.serve import database_url, fail_without_database, store_options
from controller.runtime.settings import DATABASE_FILE, system_clock

if TYPE_CHECKING:
    from controller.core import review
    from controller.core.desired import DesiredState
    from controller.core.observed import ObservedState

SERVER_TIMEOUT_S = 120.0  # the service fetches both refs and plans the whole fleet


@click.command("plan")
@click.option(
    "--base", required=True, help="The revision merged into (e.g. origin/main, a branch, a sha)."
)
@click.option(
    "--head",
    required=True,
    help="The pull request's revision (e.g. refs/pull/42/head, a branch, HEAD, a sha).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the head changes any policy object.")
@click.option(
    "--catalogue",
    "catalogue_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Patch catalogue snapshot (JSON, as GET /api/v1/catalogue serves it): titles, "
    "severities, and a warning for unknown patch ids.",
)
@server_options
@source_options
@store_options
@now_option
def plan_command(
    base: str,
    head: str,
    fmt: str,
    exit_code: bool,
    catalogue_file: Path | None,
    server: str | None,
    ca_file: Path | None,
    repo: str,
    branch: str | None,
    db_url: str | None,
    state_dir: Path,
    now: datetime | None,
) -> None:
    """Show what merging HEAD into BASE would do, per changed object in the words a reviewer
    checks (patches approved, revoked and rejected; targets; reason, ticket, expiry; window
    occurrences; baselines tightened or loosened; script diffs), with warnings (unknown patch
    ids, approvals that approve nothing or expired on arrival, Linux auto-approval, unknown
    targets), and, when a fleet is at hand, the devices affected and compliance before/after.

    From the two revisions alone the plan needs no database. The fleet is read from the store
    (--db, or the SQLite file in --state-dir) when there is one, or the controller plans with
    --server URL (GET /api/v1/plan, the read token in PATCHCTL_TOKEN): it fetches both refs
    (branch names, refs/pull/N/head, refs/merge-requests/N/head or commit ids) and uses its
    live fleet and catalogue; --repo and the store are then not used. Markdown stays under
    60,000 characters, so it fits a PR comment. Exit 0, or 1 with
    --exit-code when something changed, or 2 when a revision, the catalogue or the server
    cannot be read; an invalid revision prints its errors and exits 1.
    """
    del branch  # both revisions are explicit
    if server is not None and catalogue_file is not None:
        fail("--catalogue is for a plan made here; with --server the controller uses its own")
    if server is not None:
        document = remote.get(
            server,
            "/api/v1/plan",
            ca_file=ca_file,
            params={"base": base, "head": head},
            timeout=SERVER_TIMEOUT_S,
        )
    else:
        document = _local_plan(
            repo,
            base=base,
            head=head,
            catalogue_file=catalogue_file,
            db_url=db_url,
            state_dir=state_dir,
            now=now or system_clock(),
        )
    if fmt == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        from controller.runtime import plans  # noqa: PLC0415 - keep --help fast

        click.echo(plans.render_markdown(document), nl=False)
    raise SystemExit(EXIT_NO if exit_code and document["changed"] else 0)


def _local_plan(
    repo: str,
    *,
    base: str,
    head: str,
    catalogue_file: Path | None,
    db_url: str | None,
    state_dir: Path,
    now: datetime,
) -> dict[str, Any]:
    from controller.core import review  # noqa: PLC0415 - keep --help fast
    from controller.runtime import plans  # noqa: PLC0415

    states = {
        name: _load(repo, rev, name, state_dir) for name, rev in (("base", base), ("head", head))
    }
    observed = _fleet(db_url, state_dir, now)
    catalogue: review.Catalogue | None = None
    if catalogue_file is not None:
        try:
            catalogue = plans.read_catalogue(catalogue_file)
        except plans.CatalogueFileError as exc:
            fail(str(exc))
    elif observed is not None and observed.catalogue:
        catalogue = review.catalogue_from_records(observed.catalogue.values())
    return plans.plan_document(
        states["base"], states["head"], now=now, observed=observed, catalogue=catalogue
    )


def _load(repo: str, rev: str, name: str, state_dir: Path) -> DesiredState:
    from controller.sources import repository  # noqa: PLC0415 - keep --help fast

    try:
        result = repository.load(repo, state_dir=state_dir, rev=rev)
    except repository.SourceError as exc:
        fail(f"{name}: {exc}")
        raise
    if result.result.state is None:
        click.echo(f"{name} {result.revision} does not validate:")
        for problem in result.result.errors:
            click.echo(f"  {problem}")
        raise SystemExit(EXIT_NO)
    return result.result.state


def _fleet(db_url: str | None, state_dir: Path, now: datetime) -> ObservedState | None:
    if db_url is None and not (state_dir / DATABASE_FILE).is_file():
        return None
    from controller.runtime import observe  # noqa: PLC0415 - only with a store
    from controller.store import StoreError, open_store  # noqa: PLC0415

    url = database_url(db_url, state_dir)
    fail_without_database(url)  # an explicit --db that names no file
    try:
        store = open_store(url, migrate=False)
        try:
            with store.read() as conn:
                return observe.observe(conn, now=now)
        finally:
            store.close()
    except StoreError as exc:
        fail(str(exc))
        raise


def register(main: click.Group) -> None:
    main.add_command(plan_command)
