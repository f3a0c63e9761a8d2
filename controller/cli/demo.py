"""`patchctl demo`: the main job on embedded defaults, in a few minutes."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.common import fail, json_option, print_json

if TYPE_CHECKING:
    from controller.demo import DemoResult, Snapshot

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@click.command()
@click.option(
    "--devices",
    type=click.IntRange(min=1, max=5000),
    default=200,
    show_default=True,
    help="Simulated devices: about half Windows (servers, workstations), half Linux servers.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1, max=60),
    default=14,
    show_default=True,
    help="Simulated days, from Monday 30 Nov 2026.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same fleet.")
@click.option(
    "--example",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=PROJECT_ROOT,
    show_default="the project's own policies/, inventory/ and feeds/",
    help="The example repository to copy.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the policy repository and the state in this (new) directory to look at later "
    "(e.g. `patchctl status --state-dir DIR/state`, `patchctl explain NAME --repo "
    "DIR/policy-repo --state-dir DIR/state`). Default: a temporary directory.",
)
@json_option
def demo(
    devices: int, days: int, seed: int, example: Path, keep: Path | None, as_json: bool
) -> None:
    """Run the whole loop on the example repository: two weeks in a few minutes.

    Copies the example policies into a new git repository, starts the service in-process
    (SQLite, the HTTP API on a loopback port, the reconcile loop), and runs simulated agents
    over the real protocol on an accelerated clock from Monday 30 Nov 2026: enrolment and
    scans, a pull request approving Linux advisories merged on day 2, the Linux, emergency,
    Windows and desktop windows opening (whitelisted Windows security updates auto-approved),
    installs with some failures and reboots. Prints a line per simulated day, then the
    compliance per baseline after day 1 and at the end, the jobs and the alerts raised.

    Exit codes: 0 done, 2 the example repository or the working directory is not usable.
    """
    from controller import logs  # noqa: PLC0415
    from controller.demo import DemoConfig, run_demo  # noqa: PLC0415 - keep --help fast

    logs.configure(level="warning")  # the story is told by the progress lines, not the logs

    if not (example / "policies").is_dir():
        fail(f"{example} holds no policies/ directory: pass --example with the example repository")
    if keep is not None and keep.exists() and any(keep.iterdir()):
        fail(f"{keep} is not empty: --keep needs a new or empty directory")
    work = keep or Path(tempfile.mkdtemp(prefix="patchctl-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    config = DemoConfig(example=example, work_dir=work, devices=devices, days=days, seed=seed)
    try:  # progress goes to stderr with --json, so stdout stays one JSON document
        result = run_demo(config, progress=lambda line: click.echo(line, err=as_json))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if as_json:
        print_json(_as_dict(result))
        return
    _print_summary(result, kept=keep is not None)


def _as_dict(result: DemoResult) -> dict[str, object]:
    return {
        "before": {"at": result.before.at, "compliance": result.before.compliance},
        "after": {"at": result.after.at, "compliance": result.after.compliance},
        "patchStatus": result.after.patch_status,
        "alerts": result.alerts,
        "jobs": result.jobs,
        "fleet": result.fleet,
        "reconciles": result.passes,
        "revisions": result.revisions,
        "approval": result.approval,
        "wallSeconds": round(result.wall_seconds, 1),
    }


def _percent(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{100 * counts.get('compliant', 0) / total:5.1f}%" if total else "    -"


def _print_summary(result: DemoResult, *, kept: bool) -> None:
    before: Snapshot = result.before
    after: Snapshot = result.after
    echo = click.echo
    echo("")
    echo(f"Compliance per baseline: {before.at:%a %d %b} -> {after.at:%a %d %b}")
    echo(f"  {'baseline':<40} {'before':>7} {'after':>7}   compliant / non-compliant / unknown")
    for baseline in sorted(set(before.compliance) | set(after.compliance)):
        old = before.compliance.get(baseline, {})
        new = after.compliance.get(baseline, {})
        echo(
            f"  {baseline:<40} {_percent(old):>7} {_percent(new):>7}   "
            f"{new.get('compliant', 0)} / {new.get('non-compliant', 0)} / {new.get('unknown', 0)}"
        )
    status = after.patch_status
    echo("")
    echo(
        f"Patches (30 days): {status.get('installed', 0)} installed, "
        f"{status.get('failed', 0)} failed, {status.get('pending', 0)} pending"
    )
    echo("Jobs: " + ", ".join(f"{count} {name}" for name, count in result.jobs.items()))
    echo("Alerts: " + (", ".join(f"{n} {kind}" for kind, n in result.alerts.items()) or "none"))
    fleet = result.fleet
    echo(
        f"Fleet: {fleet['enrolled']} enrolled, {fleet['reports']} reports, {fleet['polls']} polls, "
        f"{fleet['reboots']} reboots; {result.passes} reconciles over {len(result.revisions)} "
        f"revision(s); {result.wall_seconds:.0f} s"
    )
    if kept:
        echo(f"Kept: {result.repo} and {result.state_dir}")
    sys.stdout.flush()


def register(main: click.Group) -> None:
    main.add_command(demo)
