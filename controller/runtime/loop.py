"""The service's reconcile loop: one reconcile at a time, started by whatever asks first.

Triggers — the interval (with jitter), a moved branch (git polling, or file events on a local
repository), the forge webhook, agent reports and the next patch-window boundary — all set one
flag; the loop runs a reconcile when the flag is set, so a burst of triggers coalesces into one
pass. `stop()` finishes the pass in progress and returns.

The report writer triggers only for writes that changed a planner input
(`controller.server.writer`): a heartbeat or a repeated scan starts no pass.
Agent reports are debounced: at most one report-triggered pass starts per `REPORT_DEBOUNCE`.
A report that arrives inside the debounce period is deferred to its end, never dropped, so the
last report of a burst is planned at most one debounce period after it was stored (not at the
next interval).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
import watchfiles

from controller import errors
from controller.core import windows
from controller.runtime.reconcile import Outcome, Reconciler
from controller.sources import git as git_source
from controller.store.leases import LeaseLostError

log = structlog.get_logger("patchctl.loop")

DEFAULT_INTERVAL = timedelta(minutes=5)
REPORT_DEBOUNCE = timedelta(seconds=2)
# The pause after a failed pass (`errors.decide`): 1 s, 2 s, 4 s, ... up to a minute, never
# giving up; a needs-a-human error waits for the next trigger instead.
ERROR_BACKOFF = errors.RetryPolicy(
    max_attempts=None,
    first_delay=timedelta(seconds=1),
    max_delay=timedelta(seconds=60),
    max_retry_after=timedelta(seconds=60),
)


class ReconcileLoop:
    """Runs `reconciler.reconcile()` on a background thread, coalescing triggers."""

    def __init__(  # noqa: PLR0913 - keyword-only options, each with a default
        self,
        reconciler: Reconciler,
        *,
        interval: timedelta = DEFAULT_INTERVAL,
        jitter: float = 0.1,
        sleep_scale: float = 1.0,
        on_outcome: Callable[[Outcome], None] | None = None,
        report_debounce: timedelta = REPORT_DEBOUNCE,
        monotonic: Callable[[], float] = time.monotonic,
        may_run: Callable[[], bool] | None = None,
    ) -> None:
        """`monotonic` (seconds) times the interval and the debounce; tests pass a fake one.
        `may_run`: asked before each pass; False skips it (a replica that does not lead)."""
        self.reconciler = reconciler
        self.interval = interval
        self.jitter = jitter
        self.sleep_scale = sleep_scale  # < 1 when the clock runs faster than the wall (the demo)
        self.on_outcome = on_outcome
        self.may_run = may_run
        self.last_outcome: Outcome | None = None
        self.last_triggers: tuple[str, ...] = ()  # what started the last completed pass
        self.passes = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reasons: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.report_debounce = report_debounce
        self._monotonic = monotonic
        self._last_report_trigger: float | None = None
        self._deferred_reports_at: float | None = None  # monotonic instant of a deferred trigger
        self._idle = threading.Event()

    # --- triggers ---------------------------------------------------------------------------

    def trigger(self, reason: str) -> None:
        """Ask for a reconcile soon; many triggers before it starts make one pass."""
        with self._lock:
            self._reasons.add(reason)
        self._idle.clear()
        self._wake.set()

    def reports_arrived(self) -> None:
        """Agent reports were stored: reconcile now, or, within the debounce period of the last
        report-triggered pass, at the end of that period (one deferred pass for any number of
        reports)."""
        now = self._monotonic()
        debounce = self.report_debounce.total_seconds() * self.sleep_scale
        with self._lock:
            last = self._last_report_trigger
            if last is None or now - last >= debounce:
                self._last_report_trigger = now
                self._deferred_reports_at = None
                self._reasons.add("reports")
            elif self._deferred_reports_at is None:
                self._deferred_reports_at = last + debounce
        self._idle.clear()
        self._wake.set()  # wakes the loop to run, or to shorten its wait to the deferred instant

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reconcile-loop", daemon=True)
        self._thread.start()
        self.trigger("start")

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no trigger is pending and no pass is running (for tests and the demo)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        failures = 0
        next_interval = self._monotonic() + self._seconds_until_next()
        while not self._stopping.is_set():
            self._wake.wait(self._seconds_to_wait(next_interval))
            if self._stopping.is_set():
                break
            reasons = self._take_reasons(next_interval)
            if reasons is None:  # woken to shorten the wait (a deferred report), not to run
                continue
            next_interval = self._monotonic() + self._seconds_until_next()
            if self.may_run is not None and not self.may_run():
                # the leader reconciles; its triggers are its own. Whatever this replica kept
                # of the observed state ages meanwhile: when it leads again it reads everything
                self.reconciler.forget()
                self._idle.set()
                continue
            self._let_go_of_last_plan()
            try:
                outcome = self.reconciler.reconcile()
            except LeaseLostError as exc:  # wait-until, no known time: another replica leads now
                self.reconciler.forget()
                log.warning("reconcile abandoned: lease lost", triggers=reasons, error=str(exc))
                self._idle.set()
                continue
            except Exception as exc:  # a bug or a dead database must not kill the service
                self.reconciler.forget()  # the next pass reads everything
                failures += 1
                verdict = errors.decide(exc, attempt=failures, policy=ERROR_BACKOFF)
                pause = verdict.delay.total_seconds() if verdict.delay is not None else None
                log.exception(
                    "reconcile crashed", triggers=reasons, kind=verdict.kind, retry_in_s=pause
                )
                if pause is not None:  # needs-a-human: no pause, the next trigger tries again
                    self._stopping.wait(pause * self.sleep_scale)
                continue
            failures = 0
            self.passes += 1
            self.last_outcome = outcome
            self.last_triggers = tuple(reasons)
            log.debug("reconcile triggered", triggers=reasons)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            del outcome  # not held while waiting: the next pass lets go of its plan
            with self._lock:
                if not self._wake.is_set() and self._deferred_reports_at is None:
                    self._idle.set()

    def _let_go_of_last_plan(self) -> None:
        """Keep the last outcome, but not its plan, once the next pass starts: a full pass
        would hold two fleets' compliance records and device summaries at once (about 220 MB
        at 1,000,000 devices, `bench/million.py`). Between passes the plan is there."""
        last = self.last_outcome
        if last is not None and last.plan is not None:
            self.last_outcome = dataclasses.replace(last, plan=None)

    def _seconds_to_wait(self, next_interval: float) -> float:
        """Until the interval pass or the deferred report trigger, whichever comes first."""
        with self._lock:
            due = next_interval
            if self._deferred_reports_at is not None:
                due = min(due, self._deferred_reports_at)
        return max(due - self._monotonic(), 0.0)

    def _take_reasons(self, next_interval: float) -> list[str] | None:
        """The triggers of the pass to run now (emptied), or None when nothing is due yet."""
        now = self._monotonic()
        with self._lock:
            self._wake.clear()
            deferred = self._deferred_reports_at
            if deferred is not None and now >= deferred:
                self._deferred_reports_at = None
                self._last_report_trigger = now
                self._reasons.add("reports")
            if not self._reasons and now < next_interval:
                return None
            reasons = sorted(self._reasons) or ["interval"]
            self._reasons.clear()
            return reasons

    def _seconds_until_next(self) -> float:
        """The interval with jitter, shortened to the next window opening or cutoff."""
        interval = self.interval.total_seconds() * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - jitter, not security
        boundary = self.next_window_boundary()
        if boundary is not None:
            interval = min(interval, max(boundary, 0.0) + 1.0)
        return max(interval * self.sleep_scale, 0.01)  # seconds of `monotonic`

    def next_window_boundary(self) -> float | None:
        """Seconds (of controller time) until the next start or cutoff of any patch window."""
        desired = self.reconciler.last_valid
        if desired is None:
            return None
        now = self.reconciler.clock()
        edges: list[datetime] = []
        for window in desired.windows:
            state = windows.evaluate(window.spec, now=now)
            if state.current is not None and state.current.cutoff_at > now:
                edges.append(state.current.cutoff_at)
            if state.upcoming is not None:
                edges.append(state.upcoming.start)
        if not edges:
            return None
        return (min(edges) - now).total_seconds()


class BranchWatcher:
    """Polls the tracked branch and triggers the loop when its tip moves.

    For a local repository the tip is read from the refs (cheap, every few seconds); for a URL
    it is fetched on each poll.
    """

    def __init__(
        self,
        loop: ReconcileLoop,
        *,
        repo: str,
        branch: str,
        state_dir: Path,
        every: timedelta = timedelta(seconds=5),
    ) -> None:
        self.loop = loop
        self.repo = repo
        self.branch = branch
        self.state_dir = state_dir
        self.every = every
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="branch-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def check(self) -> bool:
        """Read the tip once; trigger and return True when it moved."""
        try:
            with git_source.open_repository(self.repo, state_dir=self.state_dir) as repo:
                tip = git_source.resolve(repo, branch=self.branch).sha
        except git_source.SourceError as exc:
            log.warning("branch poll failed", error=str(exc))
            return False
        moved = self._last is not None and tip != self._last
        self._last = tip
        if moved:
            self.loop.trigger("branch moved")
        return moved

    def _run(self) -> None:
        self.check()
        git_dir = self._local_git_dir()
        if git_dir is None:
            while not self._stopping.wait(self.every.total_seconds()):
                self.check()
            return
        # A local repository: file events on its refs, so a commit is seen within milliseconds;
        # the timeout doubles as a slow poll in case an event is missed.
        for _changes in watchfiles.watch(
            git_dir,
            stop_event=self._stopping,
            debounce=50,
            step=20,
            rust_timeout=int(self.every.total_seconds() * 1000),
            yield_on_timeout=True,
            watch_filter=_is_ref_change,
        ):
            self.check()

    def _local_git_dir(self) -> Path | None:
        if git_source.is_url(self.repo):
            return None
        try:
            with git_source.open_repository(self.repo, state_dir=self.state_dir) as repo:
                return Path(repo.git_dir)
        except git_source.SourceError:
            return None


def _is_ref_change(_change: watchfiles.Change, path: str) -> bool:
    """Branch tips live in refs/, packed-refs and HEAD; objects and the index are noise."""
    return "/refs/" in path or path.endswith(("packed-refs", "HEAD"))
