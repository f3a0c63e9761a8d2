"""`patchctl simulate`: a fleet of simulated agents against a running `patchctl serve`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from controller.cli.common import (
    EXIT_NO,
    duration_value,
    fail,
    json_option,
    print_json,
    source_options,
)
from controller.cli.remote import check_server
from controller.cli.serve import database_url, store_options
from controller.vocabularies import TENANT_PATTERN

if TYPE_CHECKING:
    from controller.sim import SimPatch

UNKNOWN_TENANT = "default"


def _tokens(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        tenant, sep, secret = value.partition("=")
        if not sep:
            tenant, secret = UNKNOWN_TENANT, value
        elif not re.fullmatch(TENANT_PATTERN, tenant):
            raise click.BadParameter(f"{tenant!r} is not a tenant path (expected TENANT=TOKEN)")
        if not secret:
            raise click.BadParameter("an empty token")
        found[tenant] = secret
    return found


@click.command()
@click.option(
    "--devices",
    type=click.IntRange(min=1, max=100_000),
    required=True,
    help="How many agents to simulate.",
)
@click.option(
    "--server",
    default="http://127.0.0.1:8080",
    callback=check_server,
    show_default=True,
    envvar="PATCHCTL_SERVER",
    show_envvar=True,
    help="Base URL of `patchctl serve`.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Same seed, same fleet and same choices."
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    callback=_tokens,
    metavar="[TENANT=]TOKEN",
    help="Enrolment token; repeat with TENANT=TOKEN to spread devices over tenants. "
    "Without it, one token per tenant that the policy (--repo) declares is created in the "
    "local store (--db); no tenant is invented.",
)
@click.option(
    "--duration",
    default=None,
    callback=duration_value(),
    metavar="DURATION",
    help="Stop after this much wall time (e.g. 60s, 10m). Default: until Ctrl-C.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Each agent enrols, reports one scan, polls its jobs once, then stops.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Simulated seconds per wall second (60: an hour passes in a minute): the agents poll, "
    "scan and install that much faster; what they report is dated in real time, the service's.",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Probability that one patch install fails (with a realistic reason).",
)
@click.option(
    "--offline-rate",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Probability per poll cycle that a device goes offline for a while.",
)
@click.option(
    "--ramp-up",
    default="10s",
    callback=duration_value(allow_zero=True),
    show_default=True,
    help="Agents start spread over this much simulated time.",
)
@click.option(
    "--catalogue",
    "catalogue_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Native catalogue JSON the devices draw missing patches from. "
    "Default: the local store's catalogue, else a built-in list.",
)
@source_options
@store_options
@json_option
def simulate(
    *,
    devices: int,
    server: str,
    seed: int,
    tokens: dict[str, str],
    duration: timedelta | None,
    once: bool,
    speed: float,
    failure_rate: float,
    offline_rate: float,
    ramp_up: timedelta | None,
    catalogue_path: Path | None,
    repo: str,
    branch: str | None,
    db_url: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Run N simulated agents (Windows and Linux, servers, workstations, a few gateways).

    They enrol, report facts, scans and package inventories, poll jobs and run them with
    realistic delays, failures, reboots and offline spells: only through the public HTTP
    protocol, like real agents. Prints a summary at the end: the counts, one per line (with
    --json, one JSON object).

    Without --token, the devices are spread over the tenants that the policy repository
    (--repo, --branch) declares in its Tenant documents, with enrolment tokens created in the
    local store; a policy that cannot be read or declares no tenant is an error (exit 2).

    Exit codes: 0 ran without protocol errors, 1 some calls failed, 2 bad option or no token.
    """
    import asyncio  # noqa: PLC0415 - keep --help fast

    from controller import sim  # noqa: PLC0415

    enrollment = tokens or _local_tokens(
        db_url, state_dir, declared_tenants(repo, branch=branch, state_dir=state_dir)
    )
    catalogue = _catalogue(catalogue_path, db_url, state_dir)
    behaviour = sim.Behaviour(
        failure_rate=failure_rate,
        offline_rate=offline_rate,
        ramp_up=ramp_up.total_seconds() if ramp_up else 0.0,
    )
    config = sim.FleetConfig(devices=devices, seed=seed, behaviour=behaviour, once=once)
    # paced `speed` times faster, reporting in real time: the service keeps real time
    clock = sim.ScaledClock(speed=speed, wall_stamps=True)
    try:
        stats = asyncio.run(
            sim.run_fleet(
                config,
                server=server,
                enrollment_tokens=enrollment,
                clock=clock,
                catalogue=catalogue,
                duration=duration.total_seconds() if duration else None,
            )
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(EXIT_NO) from None
    summary = {"devices": devices, "seed": seed, "server": server} | stats.as_dict()
    if as_json:
        print_json(summary)
    else:
        for line in summary_lines(summary):
            click.echo(line)
    if stats.errors:
        raise SystemExit(EXIT_NO)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The text form of the summary (`--json` prints the dict itself): a header line, then one
    `  name  value` line per count, as `reconcile` prints its counts, and the errors by kind."""
    header = f"simulated {summary['devices']} devices against {summary['server']}"
    lines = [f"{header} (seed {summary['seed']})"]
    lines.extend(
        f"  {_words(key):<20} {value}"
        for key, value in summary.items()
        if key not in {"devices", "seed", "server", "errors"}
    )
    errors = summary.get("errors") or {}
    shown = ", ".join(f"{kind} {count}" for kind, count in errors.items()) or "none"
    lines.append(f"  {'errors':<20} {shown}")
    return lines


def _words(key: str) -> str:
    """`patchesFailed` -> `patches failed`."""
    return re.sub(r"([A-Z])", r" \1", key).lower()


def declared_tenants(repo: str, *, branch: str | None, state_dir: Path) -> tuple[str, ...]:
    """The tenant paths (partners and their clients) the policy at `repo` declares, the
    example's order first (same seed, same fleet); exits 2 naming the tenants it would
    otherwise have had to invent when the policy declares none or cannot be read."""
    from controller.sim.fleet import DEFAULT_TENANTS  # noqa: PLC0415
    from controller.sources import repository  # noqa: PLC0415

    invented = ", ".join(DEFAULT_TENANTS)
    hint = "pass --token TENANT=TOKEN (patchctl token create --tenant T), or --repo"
    try:
        loaded = repository.load(repo, state_dir=state_dir, branch=branch)
    except repository.SourceError as exc:
        fail(f"cannot read the policy at {repo} to learn its tenants ({exc}); {hint}")
        raise  # unreachable: fail() exits
    state = loaded.result.state
    if state is None:
        fail(f"the policy at {loaded.description} does not validate (patchctl validate); {hint}")
        raise AssertionError  # unreachable: fail() exits
    declared = state.tenant_paths()
    if not declared:
        fail(
            f"the policy at {loaded.description} declares no tenant (kind: Tenant); simulate "
            f"will not invent {invented}: declare them, or {hint}"
        )
    known = [t for t in DEFAULT_TENANTS if t in declared]
    return (*known, *sorted(declared - set(known)))


def _local_tokens(db_url: str | None, state_dir: Path, tenants: tuple[str, ...]) -> dict[str, str]:
    """One enrolment token per tenant, created in the local store."""
    from controller.store import StoreError, open_store, tokens  # noqa: PLC0415

    try:
        store = open_store(database_url(db_url, state_dir))
    except StoreError as exc:
        fail(f"{exc} (or pass --token)")
        raise  # unreachable
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            return {
                tenant: tokens.create_token(
                    conn,
                    kind=tokens.TokenKind.ENROLLMENT,
                    tenant=tenant,
                    description="patchctl simulate",
                    expires_at=now + timedelta(days=1),
                    now=now,
                ).secret
                for tenant in tenants
            }
    finally:
        store.close()


def _catalogue(path: Path | None, db_url: str | None, state_dir: Path) -> list[SimPatch]:
    from controller import sim  # noqa: PLC0415

    if path is not None:
        from controller.feeds import native  # noqa: PLC0415

        result = native.parse_file(path, name=path.name, release=None)
        if result.errors and not result.records:
            fail(f"{path}: {result.errors[0]}")
        return sim.from_records(result.records)
    url = database_url(db_url, state_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return list(sim.BUILTIN)
    from controller.store import StoreError, catalogue, open_store  # noqa: PLC0415

    try:
        store = open_store(url)
    except StoreError:
        return list(sim.BUILTIN)
    try:
        records = catalogue.load_catalogue(store, include_withdrawn=False)
    finally:
        store.close()
    return sim.from_records(records.values()) or list(sim.BUILTIN)


def register(main: click.Group) -> None:
    main.add_command(simulate)
