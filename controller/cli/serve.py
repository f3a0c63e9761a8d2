"""`patchctl serve`: the service — agent API, read API, dashboard, and the reconcile loop.

Also home of `store_options` (--db, --state-dir), which every command that opens the state
store takes.
"""

from __future__ import annotations

import gc
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from controller.cli.common import (
    access_policy_option,
    current_config,
    duration_value,
    enforced_source_options,
    fail,
    fail_with,
    load_access_or_fail,
)
from controller.runtime.settings import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_ENROLMENTS_PER_ADDRESS,
    DEFAULT_ENROLMENTS_PER_TOKEN,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STATE_DIR,
    Settings,
    default_database_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.forges.settings import ForgeSettings
    from controller.server.tls import TlsFiles
    from controller.store import Store
    from controller.store.leases import ServeLock

F = TypeVar("F", bound="Callable[..., Any]")

WEBHOOK_SECRET_ENV = "PATCHCTL_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


def store_options(func: F) -> F:
    """--db and --state-dir (also PATCHCTL_DB and PATCHCTL_STATE_DIR)."""
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_STATE_DIR,
        envvar="PATCHCTL_STATE_DIR",
        show_envvar=True,
        show_default=True,
        help="Where the SQLite database (patchctl.db), clones and status live.",
    )(func)
    return click.option(
        "--db",
        "db_url",
        default=None,
        envvar="PATCHCTL_DB",
        show_envvar=True,
        metavar="URL",
        help="SQLAlchemy database URL: sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/DB. Default: SQLite in the state directory.",
    )(func)


def database_url(db_url: str | None, state_dir: Path) -> str:
    return db_url or default_database_url(state_dir)


def open_store_or_fail(db_url: str | None, state_dir: Path, *, create: bool = False) -> Store:
    """Open (migrate) the store, or exit 2 with the store's own message.

    Only the commands that build state (`serve`, `reconcile`, `token create`, `feed import`)
    pass `create`: any other command on a SQLite file that does not exist says so instead of
    creating an empty database and answering "0 devices" (run in the wrong folder, or with the
    wrong --state-dir)."""
    from controller.store import StoreError, open_store  # noqa: PLC0415 - keep --help fast

    url = database_url(db_url, state_dir)
    if not create:
        fail_without_database(url)
    try:
        return open_store(url)
    except StoreError as exc:
        fail_with(exc)


def fail_without_database(url: str) -> None:
    """Exit 2 when `url` names a SQLite file that does not exist, rather than let opening it
    create an empty database (which later commands would read as "0 devices")."""
    missing = _missing_sqlite_file(url)
    if missing is not None:
        fail(
            f"no state database at {missing}: nothing has run with this state yet. Give the "
            "controller's --state-dir or --db (PATCHCTL_STATE_DIR, PATCHCTL_DB), or start it "
            "with `patchctl serve` or `patchctl reconcile`."
        )


def _missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file a URL names, when it does not exist (None for other engines)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keep --help fast
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # open_store says what is wrong with it
    if not parsed.drivername.startswith("sqlite") or parsed.database in {None, "", ":memory:"}:
        return None
    path = Path(str(parsed.database))
    return None if path.exists() else path


@click.command()
@enforced_source_options
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    envvar="PATCHCTL_LISTEN",
    show_envvar=True,
    metavar="HOST:PORT",
    help="Address to serve the agent API, read API and metrics on ([::1]:8080 for IPv6).",
)
@store_options
@click.option(
    "--poll-interval",
    default=f"{int(DEFAULT_POLL_INTERVAL.total_seconds())}s",
    show_default=True,
    callback=duration_value(),
    help="How often agents should poll (told to them at enrolment and in every answer).",
)
@click.option(
    "--max-body",
    "max_body_bytes",
    type=click.IntRange(min=1024),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="Largest request body accepted, in bytes (larger ones get 413 before parsing).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="Open connections accepted; more get 503 and are closed (keep it under `ulimit -n`).",
)
@click.option(
    "--enrolments-per-address",
    type=click.IntRange(min=1),
    default=DEFAULT_ENROLMENTS_PER_ADDRESS,
    show_default=True,
    help="Enrolments a minute from one client address (raise it behind a proxy or NAT); "
    "more get 429 with Retry-After.",
)
@click.option(
    "--enrolments-per-token",
    type=click.IntRange(min=1),
    default=DEFAULT_ENROLMENTS_PER_TOKEN,
    show_default=True,
    help="Enrolments a minute with one enrolment token; more get 429 with Retry-After.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=DEFAULT_HEADER_TIMEOUT,
    show_default=True,
    help="Seconds a request's headers may take; slower clients get 408 and are disconnected.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=DEFAULT_BODY_TIMEOUT,
    show_default=True,
    help="Seconds a request's body may take; slower clients get 408 and are disconnected.",
)
@click.option(
    "--interval",
    default="5m",
    show_default=True,
    callback=duration_value(),
    help="Reconcile at least this often (with 10% jitter); commits, agent reports, the webhook "
    "and window openings also start a pass at once.",
)
@click.option(
    "--resync",
    default="10m",
    show_default=True,
    callback=duration_value(),
    help="Read the whole store and plan every device at least this often; the other passes "
    "read and plan only what changed, and the resync logs and counts any drift "
    "(patchctl_reconcile_drift_total).",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Watch the branch: file events on a local repository, polling for a URL.",
)
@click.option(
    "--git-poll",
    default="30s",
    show_default=True,
    callback=duration_value(),
    help="How often to fetch a repository given as a URL (with --watch).",
)
@click.option(
    "--reconcile/--no-reconcile",
    "run_loop",
    default=True,
    show_default=True,
    help="Run the reconcile loop in this process (--no-reconcile: serve agents only).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless stderr is a terminal.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="PATCHCTL_TLS_CERT",
    show_envvar=True,
    metavar="FILE",
    help="Serve HTTPS with this PEM certificate chain (with --tls-key); reloaded on SIGHUP.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="PATCHCTL_TLS_KEY",
    show_envvar=True,
    metavar="FILE",
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    envvar="PATCHCTL_TRUSTED_PROXIES",
    show_envvar=True,
    metavar="ADDRESS",
    help="A reverse proxy (IP or CIDR) whose X-Forwarded-For/-Proto headers are believed; "
    "repeat for several. Headers from any other address are ignored.",
)
@click.option(
    "--forge",
    "forge_kind",
    type=click.Choice(["github", "gitlab", "gitea"]),
    default=None,
    envvar="PATCHCTL_FORGE",
    show_envvar=True,
    help="Post the plan of every pull request the webhook announces as a comment (edited in "
    "place) with a patchctl/plan commit status, and a patchctl/apply status on each revision "
    "applied or refused. gitea also means Forgejo. Also `kind` in the [forge] table; needs "
    "--forge-repository and a token (docs/pull-requests.md).",
)
@click.option(
    "--forge-url",
    default=None,
    envvar="PATCHCTL_FORGE_URL",
    show_envvar=True,
    metavar="URL",
    help="The forge's API root: https://api.github.com (default for github), "
    "https://gitlab.com/api/v4 (default for gitlab), https://HOST/api/v1 for Gitea/Forgejo, "
    "https://HOST/api/v3 for GitHub Enterprise Server.",
)
@click.option(
    "--forge-repository",
    default=None,
    envvar="PATCHCTL_FORGE_REPOSITORY",
    show_envvar=True,
    metavar="OWNER/NAME",
    help="The policy repository on the forge (GitLab: the project path or its number); "
    "pull-request events of other repositories are ignored.",
)
@click.option(
    "--forge-token-env",
    default=None,
    metavar="VARIABLE",
    help="The environment variable that holds the forge token (the token itself is never an "
    "option or in a file). Default: PATCHCTL_FORGE_TOKEN.",
)
@access_policy_option
def serve(
    repo: str,
    branch: str,
    listen: str,
    db_url: str | None,
    state_dir: Path,
    poll_interval: timedelta,
    max_body_bytes: int,
    max_connections: int,
    enrolments_per_address: int,
    enrolments_per_token: int,
    header_timeout: float,
    body_timeout: float,
    interval: timedelta,
    resync: timedelta,
    watch: bool,
    git_poll: timedelta,
    run_loop: bool,
    log_level: str,
    log_format: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    trusted_proxies: tuple[str, ...],
    forge_kind: str | None,
    forge_url: str | None,
    forge_repository: str | None,
    forge_token_env: str | None,
    access_policy: Path | None,
) -> None:
    """Run the service: the reconcile loop over --repo/--branch, the agent protocol, the read
    API, the dashboard at /, /healthz, /readyz, /metrics and the git webhook.

    Opens (creates, migrates) the state store first and refuses a database written by a newer
    patchctl. Agents enrol with a token from `patchctl token create --kind enrollment`; people
    and tools read with one from `patchctl token create --kind read`. The OpenAPI document is
    at /openapi.json.

    The loop reconciles one pass at a time: on start, every --interval, when the branch moves,
    when agents report, when a patch window opens or reaches its cutoff, and on a verified
    POST /api/v1/hooks/git (set PATCHCTL_WEBHOOK_SECRET; GitHub, Gitea and GitLab headers are
    understood). With a forge (--forge or the [forge] table), a pull-request event posts that
    PR's plan as a comment and a commit status instead, and every applied revision gets a
    status (docs/pull-requests.md). After each pass, notifications are sent (SMTP settings
    from the [smtp] table of patchctl.toml) and due ReportSchedules are written back to the
    patchctl-reports branch; due PatchFeeds are imported (URLs and local paths only when
    [feeds] allow lists them).

    Only --branch (default main) is enforced, read from git objects: the checked-out branch
    and the working tree of --repo never are. Approvals are judged by the same access policy
    as `patchctl reconcile` (--access-policy, else the [access] table of ./patchctl.toml).

    With --tls-cert and --tls-key it serves HTTPS; `kill -HUP` loads a renewed certificate
    without a restart. Behind a reverse proxy, --trusted-proxy names the proxies whose
    forwarded headers are believed (docs/deployment.md).

    Several replicas may serve one PostgreSQL database: each serves agents, and the one holding
    the reconciler lease runs the loop and the chores; when it stops or dies another takes over
    within about 10 seconds (readyz and status say which replica leads). SQLite allows one
    `serve` at a time: a second one exits 2 naming the first.

    Stops cleanly on Ctrl-C or SIGTERM: finishes the pass in progress and the queued writes,
    then hands the lease over.

    Exit codes: 0 stopped cleanly, 2 bad option, unreachable database, address in use or a
    SQLite database that another `serve` is serving.
    """
    import structlog  # noqa: PLC0415 - keep --help fast
    import uvicorn  # noqa: PLC0415

    from controller import logs  # noqa: PLC0415
    from controller.notify.settings import SettingsError, smtp_from_table  # noqa: PLC0415
    from controller.runtime.feedsources import (  # noqa: PLC0415
        FeedSettings,
        FeedSettingsError,
        feeds_from_table,
    )
    from controller.runtime.leadership import Leadership  # noqa: PLC0415
    from controller.runtime.reconcile import PolicySource, Reconciler  # noqa: PLC0415
    from controller.runtime.service import Controller, ServiceOptions  # noqa: PLC0415
    from controller.server import create_app, transport  # noqa: PLC0415
    from controller.server import tls as tls_files  # noqa: PLC0415

    try:
        settings = Settings(
            state_dir=state_dir,
            db_url=db_url,
            listen=listen,
            poll_interval=poll_interval,
            max_body_bytes=max_body_bytes,
            max_connections=max_connections,
            enrolments_per_address=enrolments_per_address,
            enrolments_per_token=enrolments_per_token,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            webhook_secret=os.environ.get(WEBHOOK_SECRET_ENV) or None,
        )
        settings_file = current_config()
        smtp = (
            smtp_from_table(settings_file.table("smtp"), source=settings_file.source)
            if run_loop
            else None
        )
        feed_settings = (
            feeds_from_table(settings_file.table("feeds"), source=settings_file.source)
            if run_loop
            else FeedSettings()
        )
    except (ValueError, SettingsError, FeedSettingsError) as exc:
        fail_with(exc)
    forge = (
        _forge_or_fail(
            kind=forge_kind, url=forge_url, repository=forge_repository, token_env=forge_token_env
        )
        if run_loop
        else None
    )
    tls = _tls_or_fail(tls_cert, tls_key)
    access = load_access_or_fail(access_policy) if run_loop else None
    store = open_store_or_fail(db_url, state_dir, create=True)
    serve_lock = _serve_lock_or_fail(store)
    controller = None
    if run_loop:
        # Only the replica holding the lease reconciles, writing through its fenced store.
        leadership = Leadership(store, exclusive=serve_lock is not None)
        reconciler = Reconciler(
            store=leadership.store,
            source=PolicySource(repo, branch, state_dir),
            clock=settings.clock,
            access=access,
            resync=resync,
        )
        options = ServiceOptions(
            interval=interval,
            watch_branch=watch,
            poll_every=git_poll,
            smtp=smtp,
            feed_settings=feed_settings,
            forge=forge,
        )
        controller = Controller(reconciler, options, leadership=leadership)
    logs.configure(level=log_level, json_lines={"json": True, "console": False}.get(log_format))
    log = structlog.get_logger("patchctl.serve")
    log.info(
        "serving",
        listen=listen,
        database=store.url,
        schema=store.schema_revision(),
        repo=repo if run_loop else None,
        branch=branch if run_loop else None,
        access="enforced" if access is not None and access.enforced else "open",
        webhook=settings.webhook_secret is not None,
        forge=f"{forge.kind.value} {forge.repository}" if forge is not None else None,
    )
    config = transport.server_config(
        create_app(store, settings, controller),
        settings,
        log_level=log_level,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )
    config.load()  # builds the TLS context now, so that SIGHUP can reload into it
    if tls is not None and config.ssl is not None:
        context = config.ssl
        signal.signal(signal.SIGHUP, lambda _s, _f: tls_files.reload(tls, context))
    server = uvicorn.Server(config)
    _tune_garbage_collector()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler that was there before; a quiet one makes a clean stop exit 0.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stopped)
    try:
        server.run()
    except SystemExit:  # uvicorn exits 3 when it cannot bind; say it our way below
        if server.started:
            raise
    finally:
        _close(store, serve_lock)
    if not server.started:
        fail(f"could not serve on {listen} (address in use or not available)")


def _close(store: Store, serve_lock: ServeLock | None) -> None:
    store.close()
    if serve_lock is not None:  # after the store: the next serve may start at once
        serve_lock.release()


def _serve_lock_or_fail(store: Store) -> ServeLock | None:
    """SQLite: this process's exclusive serve lock, or exit 2 naming the `serve` that runs."""
    from controller.store import leases  # noqa: PLC0415 - keep --help fast

    try:
        return leases.lock_sqlite(store, now=datetime.now(tz=UTC))
    except leases.ReplicaConflictError as exc:
        store.close()
        fail_with(exc)


def _stopped(_signal: int, _frame: object) -> None:
    """Nothing left to do: uvicorn has already stopped the service."""


def _forge_or_fail(
    *, kind: str | None, url: str | None, repository: str | None, token_env: str | None
) -> ForgeSettings | None:
    """The forge from the options over the [forge] table, or exit 2 naming the key at fault
    (an unset token included: a forge that cannot be used is found before serving)."""
    from controller.forges import settings  # noqa: PLC0415 - keep --help fast

    config = current_config()
    try:
        return settings.resolve(
            config.table("forge"),
            source=config.source,
            kind=kind,
            url=url,
            repository=repository,
            token_env=token_env,
        )
    except settings.ForgeSettingsError as exc:
        fail_with(exc)


def _tls_or_fail(cert: Path | None, key: Path | None) -> TlsFiles | None:
    """Both files or neither; a pair that does not load exits 2 before anything starts."""
    from controller.server.tls import TlsError, TlsFiles  # noqa: PLC0415 - keep --help fast

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        fail("--tls-cert and --tls-key go together (a certificate and its private key)")
        return None
    files = TlsFiles(cert, key)
    try:
        files.check()
    except TlsError as exc:
        fail_with(exc)
    return files


def _tune_garbage_collector() -> None:
    """Keep the collector off the long-lived objects loaded at start (modules, the app, SQL
    caches) and collect the young generation less often: on the report path, collections of
    a full heap otherwise cost about a third of the CPU."""
    from controller.sources import gcpause  # noqa: PLC0415 - the service's, not --help's

    gc.collect()
    gcpause.freeze()
    gc.set_threshold(50_000, 50, 100)


def register(main: click.Group) -> None:
    main.add_command(serve)
