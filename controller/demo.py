"""`patchctl demo`: the whole loop on the example repository, two weeks in a few minutes.

Everything is real except the clock: a git repository (a copy of the example policies), the
SQLite store, the HTTP service on a loopback port with its reconcile loop, and simulated agents
speaking the public protocol. Time is a `ManualClock` that the driver moves in steps; after
each step it waits until every agent is idle again and the loop has reconciled what they
reported, so a slow machine makes the demo slower, never different.

The story: the fleet enrols and scans; a pull request approving the Linux advisories the fleet
waits for is merged on day 2; the Linux, emergency, Windows and desktop windows open over the
two weeks, auto-approving whitelisted Windows security updates and installing with some
failures and reboots.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import httpx
import uvicorn

from controller import sim
from controller.feeds import native
from controller.runtime import status
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, catalogue, open_store, tokens
from controller.store import alerts as alert_store
from controller.store import jobs as job_store
from controller.store import runs as run_store

EXAMPLE_DIRS = ("policies", "inventory", "feeds")
CATALOGUE = Path("feeds") / "example-catalogue.json"
AUTHOR = git.Actor("Dana Ops", "dana@acme.example")
REVIEWER = "Sam Lead <sam@acme.example>"
ENROLLING = ("acme/retail", "acme/logistics", "acme")
LINUX_BASELINE = "Baseline acme/linux-security"

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """What the demo runs; the defaults make the two-week story (five minutes on two cores)."""

    example: Path  # the example repository (holds policies/, inventory/, feeds/)
    work_dir: Path  # a fresh directory: the policy repository and the state go here
    devices: int = 200
    days: int = 14
    start: datetime = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
    step: timedelta = timedelta(minutes=15)
    poll_interval: timedelta = timedelta(hours=4)  # shorter while a device's window is open
    reconcile_every: timedelta = timedelta(hours=2)  # at least; activity and windows add passes
    approval_after: timedelta = timedelta(days=2, hours=10)  # the pull request is merged
    seed: int = 7
    behaviour: sim.Behaviour = field(
        default_factory=lambda: sim.Behaviour(
            failure_rate=0.01,
            offline_rate=0.01,
            offline_seconds=(3600.0, 6 * 3600.0),
            ramp_up=3600.0,
            missing_range=(3, 20),
        )
    )


@dataclass
class Snapshot:
    """The fleet at one moment, as `patchctl status` sees it."""

    at: datetime
    compliance: dict[str, dict[str, int]]
    patch_status: dict[str, int]


@dataclass
class DemoResult:
    before: Snapshot
    after: Snapshot
    alerts: dict[str, int]
    jobs: dict[str, int]
    fleet: dict[str, Any]
    passes: int
    revisions: list[str]
    approval: dict[str, Any]
    wall_seconds: float
    repo: Path
    state_dir: Path
    read_token: str = field(repr=False)


def run_demo(config: DemoConfig, progress: Progress = lambda _line: None) -> DemoResult:
    """Prepare the repository and the store, serve, run the fleet through the days, summarise."""
    wall = time.monotonic()
    repo = _policy_repository(config)
    state_dir = config.work_dir / "state"
    store = open_store(f"sqlite:///{state_dir / 'patchctl.db'}")
    try:
        imported = catalogue.upsert_records(store, _example_records(config.example))
        progress(f"policy repository {repo} ({repo_head(repo)}); catalogue: {imported.new} patches")
        return asyncio.run(_Driver(config, repo, state_dir, store, progress, wall).run())
    finally:
        store.close()


def repo_head(repo: Path) -> str:
    with git.Repo(repo) as opened:
        return opened.head.commit.hexsha[:12]


def _policy_repository(config: DemoConfig) -> Path:
    """A new git repository holding a copy of the example policies, with one first commit."""
    repo_dir = config.work_dir / "policy-repo"
    for name in EXAMPLE_DIRS:
        shutil.copytree(config.example / name, repo_dir / name)
    with git.Repo.init(repo_dir, initial_branch="main") as repo:
        repo.git.add("--all")
        stamp = config.start - timedelta(days=1)
        repo.index.commit(
            "Example policies for acme, acme/retail and acme/logistics",
            author=AUTHOR,
            committer=AUTHOR,
            author_date=_git_date(stamp),
            commit_date=_git_date(stamp),
        )
    return repo_dir


def _git_date(moment: datetime) -> str:
    """GitPython's raw date format: seconds since the epoch and the offset."""
    return f"{int(moment.timestamp())} +0000"


def _example_records(example: Path) -> list[Any]:
    result = native.parse_file(example / CATALOGUE, name=str(CATALOGUE), release=None)
    if result.errors:
        raise ValueError(f"{CATALOGUE}: {result.errors[0]}")
    return list(result.records)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Driver:
    """Runs the service and the fleet, and moves time."""

    def __init__(
        self,
        config: DemoConfig,
        repo: Path,
        state_dir: Path,
        store: Store,
        progress: Progress,
        wall: float,
    ) -> None:
        self.config = config
        self.repo = repo
        self.state_dir = state_dir
        self.store = store
        self.progress = progress
        self.wall = wall
        self.clock = sim.ManualClock(config.start)
        self.stats = sim.Stats()
        self.approval: dict[str, Any] = {}

    async def run(self) -> DemoResult:
        enrolment, read_token = self._tokens()
        reconciler = Reconciler(
            store=self.store,
            source=PolicySource(str(self.repo), "main", self.state_dir),
            clock=self.clock.now,
        )
        controller = Controller(
            reconciler,
            ServiceOptions(
                interval=timedelta(hours=1),
                jitter=0.0,
                notify=False,  # the example's webhook points at hooks.example
                reports_dir=self.state_dir / "reports",
            ),
        )
        settings = Settings(
            state_dir=self.state_dir,
            listen=f"127.0.0.1:{_free_port()}",
            poll_interval=self.config.poll_interval,
            clock=self.clock.now,
            # The whole simulated fleet enrols at once from one address.
            enrolments_per_address=max(600, 2 * self.config.devices),
        )
        app = create_app(self.store, settings, controller)
        stop = asyncio.Event()
        async with app.router.lifespan_context(app):
            fleet = asyncio.create_task(
                sim.run_fleet(
                    sim.FleetConfig(
                        devices=self.config.devices,
                        seed=self.config.seed,
                        behaviour=self.config.behaviour,
                        connections=4,  # httpx scans its pool on every request
                    ),
                    server=f"http://{settings.listen}",
                    transport=httpx.ASGITransport(app),
                    enrollment_tokens=enrolment,
                    clock=self.clock,
                    catalogue=sim.from_records(_example_records(self.config.example)),
                    stop=stop,
                    stats=self.stats,
                )
            )
            before = await self._days(controller)
            stop.set()  # agents stop when they next wake: move time until all have
            while not fleet.done():
                await self.clock.advance(self.config.step.total_seconds())
                await asyncio.sleep(0.01)
            stats = await fleet
        after = self._snapshot()
        return DemoResult(
            before=before,
            after=after,
            alerts=self._alert_counts(),
            jobs=self._job_counts(),
            fleet=stats.as_dict(),
            passes=controller.loop.passes,
            revisions=self._revisions(),
            approval=self.approval,
            wall_seconds=time.monotonic() - self.wall,
            repo=self.repo,
            state_dir=self.state_dir,
            read_token=read_token,
        )

    async def _days(self, controller: Controller) -> Snapshot:
        """Step through the days; returns the fleet after its first day (the "before")."""
        config = self.config
        end = config.start + timedelta(days=config.days)
        before: Snapshot | None = None
        next_day = config.start + timedelta(days=1)
        seen: tuple[int, ...] = ()
        next_pass = config.start
        while self.clock.now() < end:
            edge = controller.loop.next_window_boundary()
            await self.clock.advance(config.step.total_seconds())
            await self._settle()
            now = self.clock.now()
            if not self.approval and now >= config.start + config.approval_after:
                await asyncio.to_thread(self._merge_approval, controller)
                next_pass = now
            # A pass when the fleet did something a plan reacts to, a window opened or closed,
            # or an hour went by: what a live service does, without a pass per heartbeat.
            activity = self._activity()
            crossed = edge is not None and edge <= config.step.total_seconds()
            if activity != seen or crossed or now >= next_pass:
                seen, next_pass = activity, now + config.reconcile_every
                controller.trigger("demo step")
                await asyncio.to_thread(controller.loop.wait_idle, 60.0)
            if now >= next_day:
                snapshot = self._snapshot()
                before = before or snapshot
                self.progress(self._day_line(now, snapshot))
                next_day += timedelta(days=1)
        return before or self._snapshot()

    def _activity(self) -> tuple[int, ...]:
        s = self.stats
        return (s.enrolled, s.jobs, s.succeeded, s.failed)

    async def _settle(self) -> None:
        """Wait until every agent sleeps on the clock again (their calls are answered)."""
        deadline = time.monotonic() + 60
        while self.clock.sleepers() < self.config.devices and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the clock's heap, which has no event to wait on
            await asyncio.sleep(0.002)

    # --- the pull request -------------------------------------------------------------------

    def _merge_approval(self, controller: Controller) -> None:
        """Approve the Linux advisories the fleet waits for, as a reviewed, merged pull request."""
        pending = self._pending_linux_patches(controller)
        with git.Repo(self.repo) as repo:
            main = repo.heads.main
            branch = repo.create_head("approve-december-linux", main.commit)
            branch.checkout()
            path = self.repo / "policies" / "approvals" / "2026-12-linux-security.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            ids = "\n".join(f"    - {patch}" for patch in pending)
            path.write_text(
                "# yaml-language-server: $schema=../../schemas/approval.json\n"
                "apiVersion: patchctl/v1\nkind: Approval\n"
                "metadata: {name: 2026-12-linux-security, tenant: acme}\n"
                f"spec:\n  patches:\n{ids}\n  targets: {{groups: [all-linux]}}\n"
                "  reason: December Linux security advisories (baseline linux-security)\n"
                "  expires: 2027-01-31\n  ticket: CHG-4900\n",
                encoding="utf-8",
            )
            now = _git_date(self.clock.now())
            repo.index.add([str(path.relative_to(self.repo))])
            repo.index.commit(
                "Approve December Linux security advisories",
                author=AUTHOR,
                committer=AUTHOR,
                author_date=now,
                commit_date=now,
            )
            main.checkout()
            identity = {"NAME": AUTHOR.name, "EMAIL": AUTHOR.email, "DATE": now}
            repo.git.merge(
                "--no-ff",
                branch.name,
                "-m",
                "Merge pull request #42 from acme/approve-december-linux",
                "-m",
                "Approve December Linux security advisories",
                "-m",
                f"Reviewed-by: {REVIEWER}\nApproved-by: {REVIEWER}",
                env={
                    f"GIT_{who}_{key}": value
                    for who in ("AUTHOR", "COMMITTER")
                    for key, value in identity.items()
                },
            )
            merge = repo.head.commit
        self.approval = {
            "commit": merge.hexsha,
            "patches": list(pending),
            "at": self.clock.now().isoformat(),
        }
        self.progress(
            f"{self.clock.now():%a %d %b %H:%M}  pull request #42 merged ({merge.hexsha[:12]}): "
            f"approves {len(pending)} Linux advisories for acme/all-linux"
        )

    def _pending_linux_patches(self, controller: Controller) -> list[str]:
        """What the Linux baseline finds missing and nothing approves yet (from the last plan):
        the list an operator would put in the month's approval."""
        outcome = controller.loop.last_outcome
        plan = outcome.plan if outcome is not None else None
        if plan is None:
            return ["USN-7123-1"]
        waiting = {p for d in plan.devices for p in d.pending_approval}
        required = {
            patch
            for record in plan.compliance
            if record.baseline == LINUX_BASELINE
            for patch in record.missing
        }
        return sorted(required & waiting) or ["USN-7123-1"]

    # --- reading the result -----------------------------------------------------------------

    def _tokens(self) -> tuple[dict[str, str], str]:
        now = self.clock.now()
        with self.store.write() as conn:
            enrolment = {
                tenant: tokens.create_token(
                    conn, kind=tokens.TokenKind.ENROLLMENT, tenant=tenant, now=now
                ).secret
                for tenant in ENROLLING
            }
            reader = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=now)
        return enrolment, reader.secret

    def _snapshot(self) -> Snapshot:
        now = self.clock.now()
        with self.store.read() as conn:
            return Snapshot(
                at=now,
                compliance=status.compliance_by_baseline(conn),
                patch_status=status.patch_status(conn, now=now),
            )

    def _day_line(self, now: datetime, snapshot: Snapshot) -> str:
        states: Counter[str] = Counter()
        for counts in snapshot.compliance.values():
            states.update(counts)
        total = sum(states.values()) or 1
        done = snapshot.patch_status
        return (
            f"{now:%a %d %b}  compliant {100 * states['compliant'] / total:5.1f}%  "
            f"non-compliant {states['non-compliant']:4}  unknown {states['unknown']:4}  "
            f"patches installed {done.get('installed', 0):5}  failed {done.get('failed', 0):4}"
        )

    def _alert_counts(self) -> dict[str, int]:
        with self.store.read() as conn:
            return alert_store.count_by_kind(conn)

    def _job_counts(self) -> dict[str, int]:
        with self.store.read() as conn:
            counted = job_store.count_by_state(conn, scope=None)
        found: Counter[tuple[str, str]] = Counter()
        for (_, kind, state), count in counted.items():
            found[kind, state] += count
        return {f"{kind} {state}": count for (kind, state), count in sorted(found.items())}

    def _revisions(self) -> list[str]:
        with self.store.read() as conn:
            return run_store.revisions(conn)


class _Server:
    """uvicorn on the demo's own event loop, beside the agents: requests and answers then pass
    without a thread switch each way (two threads would wait on each other for the GIL)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self.task.done() or time.monotonic() > deadline:
                raise RuntimeError("the demo service did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
