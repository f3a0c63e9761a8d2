"""The controller's background work inside `serve`: the reconcile loop, the branch watcher, and
the chores that follow a pass (notifications, scheduled reports, feed refreshes).

With a `Leadership` (every `serve`), only the replica that holds the reconciler lease runs
passes and chores, and they write through the lease's fenced store; a follower forwards its
triggers to the leader (`controller.runtime.leadership`).

Chores run on their own thread, one round at a time, after the pass that asked for them: a slow
SMTP server or a push to a far remote never delays the next reconcile. A chore that fails is
logged and its error kept in the status table (`chore:<name>`); the next round tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from controller.core.desired import DesiredState
from controller.core.plan import Plan
from controller.core.revisions import Revision
from controller.forges.clients import client_for
from controller.forges.settings import ForgeSettings
from controller.notify.notifier import Notifier
from controller.notify.routing import channel_id
from controller.notify.settings import SmtpSettings
from controller.notify.state import ProgressWriter, StatusWriter, read_events, resume
from controller.reports import publish, schedules
from controller.reports.collect import pending_from_plan
from controller.runtime import feeds, observe, proposals
from controller.runtime.feedsources import FeedSettings, FeedSources
from controller.runtime.forge_publisher import ForgePublisher
from controller.runtime.leadership import Leadership
from controller.runtime.loop import DEFAULT_INTERVAL, BranchWatcher, ReconcileLoop
from controller.runtime.reconcile import Outcome, Reconciler
from controller.sources import git as git_source
from controller.store import Store
from controller.store import status as status_store
from controller.store.leases import LeaseLostError

log = structlog.get_logger("patchctl.service")

REPORT_RUNS_KEY = "report-runs"
FAST_POLL = timedelta(minutes=15)  # how often an agent polls while its window is open
MIN_POLL = timedelta(seconds=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    """How the background work runs; the defaults are those of `patchctl serve`."""

    interval: timedelta = DEFAULT_INTERVAL
    jitter: float = 0.1
    sleep_scale: float = 1.0  # < 1 when the clock runs faster than the wall (the demo)
    watch_branch: bool = True
    poll_every: timedelta = timedelta(seconds=30)  # git polling of a URL source
    notify: bool = True
    smtp: SmtpSettings | None = None
    scheduled_reports: bool = True
    feeds: bool = True  # refresh the PatchFeeds that are due
    feed_settings: FeedSettings = field(
        default_factory=FeedSettings
    )  # URLs and paths feeds may name ([feeds])
    reports_dir: Path | None = None  # scheduled reports are also written here when set
    forge: ForgeSettings | None = None  # plan comments and commit statuses ([forge])
    proposals: bool = True  # keep ApprovalProposal branches (and pull requests) up to date


@dataclass(frozen=True, slots=True)
class PassContext:
    """What a chore is told about the pass it follows."""

    outcome: Outcome
    desired: DesiredState | None
    now: datetime


Chore = Callable[[PassContext], None]


class Controller:
    """Starts and stops the loop, the watcher, the chores and the forge publisher; the HTTP app
    calls `trigger` (the forge webhook), `forge.pull_request_seen` (a pull-request webhook) and
    `reports_arrived` (the report writer)."""

    def __init__(
        self,
        reconciler: Reconciler,
        options: ServiceOptions | None = None,
        *,
        chores: Sequence[tuple[str, Chore]] | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        """`leadership` None: this process is the only one and always reconciles (tests, the
        demo); with it, the reconciler must write through `leadership.store`."""
        if leadership is not None and reconciler.store is not leadership.store:
            raise ValueError("the reconciler must write through the leadership's fenced store")
        self.reconciler = reconciler
        self.leadership = leadership
        self.options = options or ServiceOptions()
        self.store: Store = reconciler.store
        self.forge = (
            ForgePublisher(
                self.options.forge,
                source=reconciler.source,
                store=self.store,
                clock=reconciler.clock,
            )
            if self.options.forge is not None
            else None
        )
        self.notifier: Notifier | None = None
        self._notifier_epoch: int | None = None  # the lease epoch the notifier resumed under
        self.loop = ReconcileLoop(
            reconciler,
            interval=self.options.interval,
            jitter=self.options.jitter,
            sleep_scale=self.options.sleep_scale,
            on_outcome=self._after_pass,
            may_run=self.leading,
        )
        source = reconciler.source
        self.watcher = (
            BranchWatcher(
                self.loop,
                repo=source.repo,
                branch=source.branch,
                state_dir=source.state_dir,
                every=self.options.poll_every
                if git_source.is_url(source.repo)
                else timedelta(seconds=5),
            )
            if self.options.watch_branch
            else None
        )
        self.chores = list(chores) if chores is not None else self._default_chores()
        self._chore_wake = threading.Event()
        self._chore_context: PassContext | None = None
        self._chore_lock = threading.Lock()
        self._stopping = threading.Event()
        self._chore_thread: threading.Thread | None = None
        # device id -> (start, end) of its current or next window occurrence, from the last pass
        self._windows: dict[str, tuple[datetime, datetime]] = {}

    # --- life cycle -------------------------------------------------------------------------

    def leading(self) -> bool:
        """Whether this replica runs the passes and chores."""
        return self.leadership is None or self.leadership.leading

    def role(self) -> dict[str, object]:
        """This replica's part, for readiness: its id, whether it leads, the lease epoch."""
        if self.leadership is None:
            return {"replica": None, "leader": True, "epoch": None}
        return self.leadership.describe()

    def start(self) -> None:
        if self.leadership is not None:
            self.leadership.on_elected = lambda: self.loop.trigger("elected")
            self.leadership.on_wanted = lambda: self.loop.trigger("asked by a replica")
            self.leadership.start()
        self._stopping.clear()
        if self.forge is not None:
            self.forge.start()
        self._chore_thread = threading.Thread(
            target=self._run_chores, name="patchctl-chores", daemon=True
        )
        self._chore_thread.start()
        self.loop.start()
        if self.watcher is not None:
            self.watcher.start()
        log.info(
            "controller started",
            repo=self.reconciler.source.repo,
            branch=self.reconciler.source.branch,
            interval_s=self.options.interval.total_seconds(),
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the pass and the chore round in progress, then stop every thread."""
        if self.watcher is not None:
            self.watcher.stop()
        self.loop.stop(timeout)
        self._stopping.set()
        self._chore_wake.set()
        if self._chore_thread is not None:
            self._chore_thread.join(timeout)
        if self.notifier is not None:
            self.notifier.flush(min(timeout, 5.0))
            self.notifier.close()
        if self.forge is not None:
            self.forge.stop(min(timeout, 10.0))
        if self.leadership is not None:  # last: the pass and the chores write under the lease
            self.leadership.stop()

    def trigger(self, reason: str) -> None:
        if self.leading():
            self.loop.trigger(reason)
        elif self.leadership is not None:
            self.leadership.ask_for_pass()

    def poll_interval(self, device_id: str, *, now: datetime, default: timedelta) -> timedelta:
        """How long the agent should wait before its next poll: `default`, but every
        `FAST_POLL` while its patch window is open, and no later than the window's opening, so
        a fleet can poll rarely and still start installing the minute its window opens."""
        window = self._windows.get(device_id)
        if window is None:
            return default
        start, end = window
        if start <= now < end:
            return min(default, FAST_POLL)
        if now < start < now + default:
            return max(start - now, MIN_POLL)
        return default

    def reports_arrived(self) -> None:
        if self.leading():
            self.loop.reports_arrived()
        elif self.leadership is not None:
            self.leadership.ask_for_pass()

    # --- chores -----------------------------------------------------------------------------

    def _after_pass(self, outcome: Outcome) -> None:
        if outcome.plan is not None:
            self._windows = _device_windows(outcome.plan)
        with self._chore_lock:
            self._chore_context = PassContext(
                outcome, self.reconciler.last_valid, outcome.started_at
            )
        self._chore_wake.set()

    def run_chores_now(self, context: PassContext) -> None:
        """One round of every chore, on the caller's thread (the demo and tests)."""
        for name, chore in self.chores:
            if not self.leading():
                log.info("chores left to the leader", chore=name)
                return
            try:
                chore(context)
            except LeaseLostError as exc:
                log.warning("chore abandoned: lease lost", chore=name, error=str(exc))
                return
            except Exception as exc:  # a broken chore must not stop the others or the loop
                log.exception("chore failed", chore=name)
                self._record_chore(name, context.now, error=str(exc))

    def _run_chores(self) -> None:
        while not self._stopping.is_set():
            self._chore_wake.wait()
            self._chore_wake.clear()
            with self._chore_lock:
                context, self._chore_context = self._chore_context, None
            if context is not None:
                self.run_chores_now(context)
            del context  # its pass's plan is not held while the next pass runs

    def _record_chore(self, name: str, now: datetime, *, error: str | None) -> None:
        try:
            with self.store.write() as conn:
                status_store.set_status(
                    conn, f"chore:{name}", {"at": now.isoformat(), "error": error}, now=now
                )
        except Exception:  # noqa: BLE001 - the status is best effort when the store is down
            log.warning("chore status not saved", chore=name)

    def _default_chores(self) -> list[tuple[str, Chore]]:
        chores: list[tuple[str, Chore]] = []
        if self.options.notify:
            chores.append(("notify", self._notify))
        if self.options.scheduled_reports:
            chores.append(("reports", self._scheduled_reports))
        if self.options.feeds:
            chores.append(("feeds", self._refresh_feeds))
        if self.forge is not None:
            chores.append(("forge", self._forge_status))
        if self.options.proposals:
            chores.append(("proposals", self._proposals))
        return chores

    def _proposals(self, context: PassContext) -> None:
        """Approval proposals of the applied revision (`controller.runtime.proposals`); a URL
        source's clone pushes the branches to its origin."""
        desired, result = context.desired, context.outcome.plan
        revision = Revision.parse(context.outcome.applied_revision)
        if desired is None or result is None or revision is None or not desired.proposals:
            return
        source = self.reconciler.source
        with self.store.read() as conn:
            observed = observe.observe(conn, now=context.now)
        settings = self.options.forge
        client = client_for(settings, clock=lambda: context.now) if settings else None
        try:
            with git_source.open_repository(
                source.repo, state_dir=source.state_dir, fetch=False
            ) as repo:
                proposals.run_proposals(
                    repo,
                    branch=source.branch,
                    desired=desired,
                    observed=observed,
                    result=result,
                    forge=client,
                    remote="origin" if git_source.is_url(source.repo) else None,
                    base=revision.sha,
                )
        finally:
            if client is not None:
                client.close()

    def _forge_status(self, context: PassContext) -> None:
        """Queue the `patchctl/apply` status of the revision this pass applied (or refused);
        the forge's own thread sends it."""
        if self.forge is not None:
            self.forge.pass_finished(context.outcome)

    def _refresh_feeds(self, context: PassContext) -> None:
        """Import the PatchFeeds whose refresh is due; a changed catalogue re-evaluates the
        fleet's inventories, and the next pass plans with it."""
        if context.desired is None:
            return
        source = self.reconciler.source
        # The policy repository's objects (for a URL, the mirror the reconcile fetched): feed
        # files are read at the applied revision, like the policy, never from a working tree.
        repo = git_source.open_repository(source.repo, state_dir=source.state_dir, fetch=False)
        try:
            runs = feeds.refresh_due_feeds(
                self.store,
                context.desired,
                now=context.now,
                sources=FeedSources(
                    state_dir=source.state_dir,
                    repo=repo,
                    settings=self.options.feed_settings,
                    clock=self.reconciler.clock,
                ),
            )
        finally:
            repo.close()
        if any(run.fleet is not None for run in runs):
            self.loop.trigger("feeds refreshed")

    def _notify(self, context: PassContext) -> None:
        """Hand the alerts and audit events stored since the last round to the notifier."""
        notifications = context.desired.notifications if context.desired else ()
        epoch = self.leadership.epoch if self.leadership is not None else None
        if self.notifier is not None and epoch != self._notifier_epoch:
            # leading again after another replica led: its queue is stale, resume afresh
            self.notifier.close()
            self.notifier = None
        if self.notifier is None:
            if not notifications:
                return
            # a new leader: resume from what each channel has delivered (controller.notify.state)
            with self.store.write() as conn:
                channel_ids = {channel_id(n.spec.channel) for n in notifications}
                settled = resume(conn, channel_ids, now=context.now)
            self.notifier = Notifier(
                notifications,
                smtp=self.options.smtp,
                clock=self.reconciler.clock,
                on_status=StatusWriter(self.store, clock=self.reconciler.clock),
                on_progress=ProgressWriter(self.store, clock=self.reconciler.clock),
                settled=settled,
            )
            self._notifier_epoch = epoch
        self.notifier.configure(notifications)
        with self.store.write() as conn:
            events, upto = read_events(conn, now=context.now)
        self.notifier.submit(events, upto=upto)

    def _scheduled_reports(self, context: PassContext) -> None:
        """Run the ReportSchedules due since their last run; write back to the reports branch."""
        desired = context.desired
        if desired is None:
            return
        with self.store.read() as conn:
            stored = status_store.get_status(conn).get(REPORT_RUNS_KEY, {}).get("value") or {}
        last_runs = {key: datetime.fromisoformat(at) for key, at in stored.items()}
        due = schedules.due_reports(desired.report_schedules, last_runs, context.now)
        ran: list[str] = []
        for schedule in due:
            publication = publish.run_schedule(
                self.store,
                schedule,
                now=context.now,
                revision=desired.revision,
                pending_approvals=self._pending(context),
                out_dir=self.options.reports_dir,
                writeback=self._writeback_target(),
            )
            ran.append(schedules.schedule_key(schedule))
            log.info("report published", schedule=ran[-1], location=publication.location)
            if self.notifier is not None:
                self.notifier.submit(publish.published_events(publication))
        kept = schedules.track_runs(desired.report_schedules, last_runs, context.now, ran=ran)
        with self.store.write() as conn:
            status_store.set_status(
                conn,
                REPORT_RUNS_KEY,
                {key: at.isoformat() for key, at in kept.items()},
                now=context.now,
            )

    @staticmethod
    def _pending(context: PassContext) -> dict[str, tuple[str, ...]] | None:
        plan = context.outcome.plan
        return pending_from_plan(plan.devices) if plan is not None else None

    def _writeback_target(self) -> publish.WritebackTarget:
        source = self.reconciler.source
        repo = source.repo
        if git_source.is_url(repo):  # commit into the clone and push from there
            with git_source.open_repository(
                repo, state_dir=source.state_dir, fetch=False
            ) as opened:
                repo = str(opened.git_dir)
        return publish.WritebackTarget(repo=repo, policy_branch=source.branch)


def _device_windows(plan: Plan) -> dict[str, tuple[datetime, datetime]]:
    """Each device's current or next window occurrence, as (start, end)."""
    occurrences = {
        key: (occurrence.start, occurrence.end)
        for key, state in plan.windows.items()
        if (occurrence := state.current or state.upcoming) is not None
    }
    return {
        d.device_id: occurrences[d.next_window]
        for d in plan.devices
        if d.next_window is not None and d.next_window in occurrences
    }
