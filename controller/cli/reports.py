"""`patchctl report`: write compliance reports to a directory or commit them to a reports branch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.common import (
    check_tenant,
    fail,
    json_option,
    print_json,
    source_options,
    time_value,
)
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options
from controller.core.revisions import Revision
from controller.vocabularies import ReportFormat

if TYPE_CHECKING:
    from controller.reports.publish import Publication
    from controller.store import Store

ALL_FORMATS = ",".join(f.value for f in ReportFormat)
DEFAULT_OUT = Path("reports")


def _formats(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[ReportFormat, ...]:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    try:
        formats = tuple(dict.fromkeys(ReportFormat(name) for name in names))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: choose from {', '.join(f.value for f in ReportFormat)}, comma-separated"
        ) from None
    if not formats:
        raise click.BadParameter("name at least one format")
    return formats


def _applied_revision(store: Store) -> str | None:
    from controller.store import status  # noqa: PLC0415 - keep --help fast

    with store.read() as conn:
        source = status.get_status(conn).get("source", {}).get("value") or {}
    revision = source.get("lastAppliedRevision")
    return str(revision) if revision else None


def _pending_approvals(
    store: Store, *, repo: str, state_dir: Path, revision: str | None, now: datetime
) -> tuple[dict[str, tuple[str, ...]] | None, str | None]:
    """Patches pending approval per device, planned (without applying) against the applied
    revision; None and the reason when the policy at that revision cannot be read."""
    from controller.core.plan import plan  # noqa: PLC0415
    from controller.reports.collect import pending_from_plan  # noqa: PLC0415
    from controller.runtime import observe  # noqa: PLC0415
    from controller.sources import git as git_source  # noqa: PLC0415
    from controller.sources import loading  # noqa: PLC0415

    parsed = Revision.parse(revision)
    if parsed is None:
        return None, "no policy revision has been applied yet"
    try:
        with git_source.open_repository(repo, state_dir=state_dir, fetch=False) as repository:
            files = git_source.read_commit(repository, parsed.sha)
    except (git_source.SourceError, ValueError) as exc:
        return None, f"cannot read {revision} from {repo}: {exc}"
    loaded = loading.load_policy(files, revision=revision)
    if loaded.state is None:
        return None, f"{revision} does not validate"
    with store.read() as conn:
        observed = observe.observe(conn, now=now)
    return pending_from_plan(plan(loaded.state, observed, now=now).devices), None


def _policy_branch(branch: str | None, revision: str | None) -> str | None:
    if branch:
        return branch
    parsed = Revision.parse(revision)
    return parsed.branch if parsed else None


@click.command("report")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Directory to write the files to (default: {DEFAULT_OUT}/ unless --write-back).",
)
@click.option(
    "--format",
    "formats",
    default=ALL_FORMATS,
    show_default=True,
    callback=_formats,
    help="Comma-separated formats: markdown, csv, html, json.",
)
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant and its clients."
)
@click.option(
    "--write-back",
    is_flag=True,
    help="Commit the files to the reports branch (the policy branch and the working tree "
    "are never touched).",
)
@click.option(
    "--reports-branch",
    default="patchctl-reports",
    show_default=True,
    help="Branch the reports are committed to.",
)
@click.option(
    "--reports-repo",
    default=None,
    help="Repository (path or URL) to commit the reports to (default: --repo).",
)
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="Push the reports branch when the repository has an `origin` remote.",
)
@click.option(
    "--now",
    callback=time_value,
    default=None,
    metavar="ISO",
    help="Stamp the report with this instant instead of the clock (and end its installs "
    "window there); devices, compliance and pending approvals are the store's current state, "
    "not a replay of that instant.",
)
@source_options
@store_options
@server_options
@json_option
def report(
    out_dir: Path | None,
    formats: tuple[ReportFormat, ...],
    tenant: str | None,
    write_back: bool,
    reports_branch: str,
    reports_repo: str | None,
    push: bool,
    now: datetime | None,
    repo: str,
    branch: str | None,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """Write compliance reports (Markdown, CSV, HTML, JSON) from the state store.

    Each report is stamped with the last applied policy revision and the time; pending approvals
    are planned against that revision of --repo. Collecting also records today's compliance for
    the trend chart. With --write-back the files are committed to --reports-branch of
    --reports-repo (default: the policy repository) and pushed when it has a remote; nothing is
    committed when the files did not change.

    With --server, a running service renders the report of the read token's scope
    (`GET /api/v1/report`, at the service's clock, pending approvals from its last reconcile)
    and the files are written to --out; nothing is recorded for the trend, and --write-back
    and --now are refused (commit the written files yourself, or use a ReportSchedule).

    Exit codes: 0 written, 2 usage, database, repository, connection or write error.
    """
    if server:
        _remote_report(
            server,
            ca_file,
            formats=formats,
            tenant=tenant,
            out_dir=out_dir,
            as_json=as_json,
            write_back=write_back,
            now=now,
        )
        return
    from controller.reports import files as report_files  # noqa: PLC0415
    from controller.reports import publish  # noqa: PLC0415
    from controller.reports.writeback import WritebackError, check_target  # noqa: PLC0415

    store = open_store_or_fail(db_url, state_dir)
    moment = now or datetime.now(tz=UTC)
    revision = _applied_revision(store)
    target = None
    if write_back:
        target = publish.WritebackTarget(
            repo=reports_repo or repo,
            branch=reports_branch,
            policy_branch=_policy_branch(branch, revision),
            push=push,
        )
        try:  # refuse a forbidden branch before collecting (which records the trend)
            checked = check_target(
                target.repo, branch=target.branch, policy_branch=target.policy_branch
            )
            if checked is not None:
                checked.close()  # only the refusal matters here; the write opens it again
        except WritebackError as exc:
            store.close()
            fail(str(exc))
    pending, why = _pending_approvals(
        store, repo=repo, state_dir=state_dir, revision=revision, now=moment
    )
    if why is not None:
        click.echo(f"patchctl: pending approvals not known: {why}", err=True)
    reports = publish.collect_reports(
        store, [tenant], now=moment, revision=revision, pending_approvals=pending
    )
    files = report_files.report_files(reports[0], formats)
    directory = out_dir if out_dir is not None or write_back else DEFAULT_OUT
    try:
        publication = publish.publish(reports, files, out_dir=directory, writeback=target)
    except WritebackError as exc:
        fail(str(exc))
        return
    finally:
        store.close()
    _print(publication, revision, as_json)


def _remote_report(
    server: str,
    ca_file: Path | None,
    *,
    formats: tuple[ReportFormat, ...],
    tenant: str | None,
    out_dir: Path | None,
    as_json: bool,
    write_back: bool,
    now: datetime | None,
) -> None:
    from controller.cli import remote  # noqa: PLC0415 - keep --help fast
    from controller.reports import publish  # noqa: PLC0415
    from controller.reports.writeback import WritebackError  # noqa: PLC0415

    if write_back or now is not None:
        fail(
            "--write-back and --now work on the controller's own database only; with --server "
            "write the files (--out) and commit them yourself"
        )
    answer = remote.get(
        server,
        "/api/v1/report",
        ca_file=ca_file,
        params={"format": [f.value for f in formats], "tenant": tenant},
    )
    files = {path: text.encode("utf-8") for path, text in answer["files"].items()}
    try:
        publication = publish.publish((), files, out_dir=out_dir or DEFAULT_OUT)
    except WritebackError as exc:
        fail(str(exc))
        return
    _print(publication, answer.get("revision"), as_json)


def _print(publication: Publication, revision: str | None, as_json: bool) -> None:
    commit = publication.commit
    if as_json:
        print_json(
            {
                "revision": revision,
                "files": sorted(publication.files),
                "written": [str(p) for p in publication.written],
                "commit": None
                if commit is None
                else {
                    "branch": commit.branch,
                    "commit": commit.commit,
                    "tree": commit.tree,
                    "changed": commit.changed,
                    "pushed": commit.pushed,
                },
            }
        )
        return
    for path in publication.written:
        click.echo(f"wrote {path}")
    if commit is not None:
        if commit.commit is None:
            click.echo(f"{commit.branch}: reports unchanged, nothing committed")
        else:
            pushed = ", pushed" if commit.pushed else ""
            click.echo(f"{commit.branch}: committed {commit.commit[:12]}{pushed}")


def register(main: click.Group) -> None:
    main.add_command(report)
