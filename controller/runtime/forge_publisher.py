"""The forge's queue: plan comments and commit statuses, sent from one thread with retries.

The webhook handler and the reconcile loop only *submit* (a dictionary insert under a lock);
this module's thread does the git reads, the planning and the HTTP calls, so a slow or broken
forge never delays an answer or a pass. Work is keyed: a newer push to a pull request replaces
its older queued plan, and a status is sent once per (commit, context, state, description).

A failed call is tried again when `controller.errors.decide` says so (`RetryPolicy.delay`:
exponential backoff, the forge's `Retry-After` honoured, up to `max_attempts`); a permanent
failure (needs-a-human: 401, 403, 404, 422, an unplannable PR, a bug) or the last attempt
is logged as an error and kept in the status table under `forge` (`patchctl status`), with
the forge host and HTTP status but never the token.

What is sent:

- on a pull-request event: the plan of the PR's base branch → its head (`patchctl plan` on the
  live fleet, `controller.runtime.plans`) as one comment edited in place, and a `patchctl/plan`
  status on the head commit: `success` when the head validates, `failure` when it does not
  (the comment lists the errors);
- after each pass, on the branch tip it applied: a `patchctl/apply` status, `success`, or
  `failure` with the reason when the access policy kept approvals of it from applying; on a
  tip that does not validate, `failure` naming the error count and the revision still enforced.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from controller import errors
from controller.core import review
from controller.core.conditions import ConditionStatus, ReconcileResult
from controller.core.revisions import Revision, format_revision
from controller.errors import RetryPolicy
from controller.forges import events
from controller.forges.clients import CommitStatus, Forge, StatusState, client_for
from controller.forges.settings import ForgeSettings
from controller.redaction import redact_text
from controller.runtime import observe, plans
from controller.sources import git as git_source
from controller.sources import loading, refs
from controller.store import Store
from controller.store import status as status_store

if TYPE_CHECKING:
    import git

    from controller.runtime.reconcile import Outcome, PolicySource

log = structlog.get_logger("patchctl.forge")

PLAN_CONTEXT = "patchctl/plan"
APPLY_CONTEXT = "patchctl/apply"
STATUS_KEY = "forge"
ERRORS_SHOWN = 20
STATUSES_KEPT = 1000  # remembered to send each status once; a forgotten one is sent again


class PlanUnavailableError(errors.NeedsHumanError):
    """The pull request cannot be planned (its commits are not in the policy repository)."""


@dataclass(slots=True)
class _Work:
    run: Callable[[], None]
    describe: str
    attempts: int = 0
    due: float = 0.0  # time.monotonic() when it may run


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    # (sha, context) -> (state, description) of the statuses sent, the newest STATUSES_KEPT
    sent_statuses: OrderedDict[tuple[str, str], tuple[str, str]] = field(
        default_factory=OrderedDict
    )


class ForgePublisher:
    """Queues forge work from any thread and runs it on its own (`start`/`stop`)."""

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        source: PolicySource,
        store: Store,
        clock: Callable[[], datetime],
        forge: Forge | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """`forge` None: the client of `settings.kind` (tests may pass another)."""
        self.settings = settings
        self.source = source
        self.store = store
        self.clock = clock
        self._own_client = forge is None
        self.forge: Forge = forge if forge is not None else client_for(settings, clock=clock)
        self.retry = retry or RetryPolicy()
        self._queue: OrderedDict[str, _Work] = OrderedDict()
        self._lock = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._counts = _Counts()

    # --- any thread -------------------------------------------------------------------------

    def pull_request_seen(self, pr: events.PullRequest) -> bool:
        """Queue the plan of `pr`; False (nothing queued) when it is another repository's."""
        if not self._same_repository(pr.repository):
            log.info("pull request of another repository ignored", repository=pr.repository)
            return False
        self._submit(f"plan:{pr.number}", _Work(lambda: self._plan(pr), f"plan {pr.label}"))
        return True

    def pass_finished(self, outcome: Outcome) -> None:
        """Queue the `patchctl/apply` status of the revision a pass applied or refused."""
        found = apply_status(outcome)
        if found is not None:
            sha, status = found
            self.submit_status(sha, status)

    def submit_status(self, sha: str, status: CommitStatus) -> None:
        """Queue one commit status, unless this very status was sent already."""
        if self._already_sent(sha, status):
            return
        self._submit(
            f"status:{sha}:{status.context}",
            _Work(lambda: self._send_status(sha, status), f"status {status.context} {sha[:12]}"),
        )

    def _already_sent(self, sha: str, status: CommitStatus) -> bool:
        with self._lock:
            sent = self._counts.sent_statuses.get((sha, status.context))
        return sent == (status.state.value, status.description)

    def wait_idle(self, timeout: float) -> bool:
        """Whether the queue emptied (and nothing runs) within `timeout` seconds (tests)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="patchctl-forge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the call in progress; queued work is dropped (the next event sends it)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._own_client:
            close = getattr(self.forge, "close", None)
            if close is not None:
                close()

    # --- the forge thread -------------------------------------------------------------------

    def _submit(self, key: str, work: _Work) -> None:
        with self._lock:
            self._queue.pop(key, None)  # newer work replaces the queued one, and goes last
            self._queue[key] = work
            self._lock.notify_all()

    def _next(self) -> tuple[str, _Work] | None:
        """The first due work, waiting for it; None when stopping (lock not held)."""
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                due = [(k, w) for k, w in self._queue.items() if w.due <= now]
                if due:
                    key, work = due[0]
                    del self._queue[key]
                    self._busy = True
                    return key, work
                soonest = min((w.due for w in self._queue.values()), default=None)
                self._lock.wait(None if soonest is None else max(soonest - now, 0.01))
        return None

    def _run(self) -> None:
        while (picked := self._next()) is not None:
            key, work = picked
            try:
                self._attempt(key, work)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _attempt(self, key: str, work: _Work) -> None:
        work.attempts += 1
        try:
            work.run()
        except errors.PatchctlError as exc:  # ForgeError, PlanUnavailableError, SourceError
            self._failed(key, work, exc)
        except Exception as exc:  # a bug here must not stop the forge thread
            log.exception("forge work failed", work=work.describe)
            # Kept from before the error tree: a bug in the forge work is reported, not retried.
            bug = errors.NeedsHumanError(redact_text(f"{type(exc).__name__}: {exc}"))
            self._failed(key, work, bug)
        else:
            with self._lock:
                self._counts.sent += 1
            self._record(error=None)

    def _failed(self, key: str, work: _Work, failure: errors.PatchctlError) -> None:
        """Queue the work again when `errors.decide` says so, else record it as failed."""
        error = redact_text(str(failure))
        verdict = errors.decide(failure, attempt=work.attempts, policy=self.retry)
        if verdict.delay is None:
            permanent = verdict.kind is errors.Kind.NEEDS_HUMAN
            note = "permanent" if permanent else f"gave up after {work.attempts} attempt(s)"
            log.error("forge call failed", work=work.describe, error=error, outcome=note)
            with self._lock:
                self._counts.failed += 1
                self._counts.last_error = f"{work.describe}: {error} ({note})"
            self._record(error=self._counts.last_error)
            return
        wait = verdict.delay
        log.warning(
            "forge call failed, will retry",
            work=work.describe,
            error=error,
            attempt=work.attempts,
            retry_in_s=wait.total_seconds(),
        )
        work.due = time.monotonic() + wait.total_seconds()
        with self._lock:
            if key not in self._queue:  # nothing newer arrived meanwhile
                self._queue[key] = work
                self._lock.notify_all()

    def _record(self, *, error: str | None) -> None:
        """The forge's state in the status table; best effort (the store may be busy)."""
        now = self.clock()
        with self._lock:
            value = {
                "kind": self.settings.kind.value,
                "repository": self.settings.repository,
                "sent": self._counts.sent,
                "failed": self._counts.failed,
                "lastError": self._counts.last_error,
                "at": now.isoformat(),
            }
            if error is not None:
                value["lastErrorAt"] = now.isoformat()
        try:
            with self.store.write() as conn:
                status_store.set_status(conn, STATUS_KEY, value, now=now)
        except Exception:  # noqa: BLE001 - the forge's status must not fail its work
            log.warning("forge status not saved")

    # --- the work ---------------------------------------------------------------------------

    def _send_status(self, sha: str, status: CommitStatus) -> None:
        if self._already_sent(sha, status):  # queued again while the same one was in flight
            return
        self.forge.set_status(sha, status)
        with self._lock:
            sent = self._counts.sent_statuses
            sent[(sha, status.context)] = (status.state.value, status.description)
            sent.move_to_end((sha, status.context))
            while len(sent) > STATUSES_KEPT:
                sent.popitem(last=False)
        log.info("forge status sent", sha=sha[:12], context=status.context, state=status.state)

    def _plan(self, pr: events.PullRequest) -> None:
        body, status = self.plan_comment(pr)
        outcome = self.forge.upsert_comment(pr.number, body)
        log.info("forge plan comment", pull_request=pr.label, comment=outcome)
        self.submit_status(pr.head_sha, status)

    def plan_comment(self, pr: events.PullRequest) -> tuple[str, CommitStatus]:
        """The comment and the `patchctl/plan` status for `pr` on the live fleet."""
        now = self.clock()
        with self._repository(pr) as repo:
            base = _load(repo, pr.base_branch, label=pr.base_branch)
            head = _load(repo, pr.head_sha, label=pr.label)
        if base.state is None:
            return _invalid_comment(pr, base, which="base"), CommitStatus(
                StatusState.ERROR,
                PLAN_CONTEXT,
                f"the base branch {pr.base_branch} does not validate: nothing to compare with",
            )
        if head.state is None:
            return _invalid_comment(pr, head, which="head"), CommitStatus(
                StatusState.FAILURE,
                PLAN_CONTEXT,
                f"does not validate: {len(head.errors)} error(s); see the plan comment",
            )
        with self.store.read() as conn:
            observed = observe.observe(conn, now=now)
        document = plans.plan_document(
            base.state,
            head.state,
            now=now,
            observed=observed,
            catalogue=review.catalogue_from_records(observed.catalogue.values()),
        )
        return plans.render_markdown(document), CommitStatus(
            StatusState.SUCCESS, PLAN_CONTEXT, _plan_summary(document)
        )

    def _repository(self, pr: events.PullRequest) -> git.Repo:
        """The policy repository with the PR's base and head at hand (a URL source's clone is
        fetched; a local repository is read as it is)."""
        repo = git_source.open_repository(
            self.source.repo, state_dir=self.source.state_dir, fetch=False
        )
        try:
            if git_source.is_url(self.source.repo):
                with refs.FETCH_LOCK:
                    refs.fetch(repo, [pr.base_branch, pr.forge_ref])
            repo.commit(pr.head_sha)
        except refs.MissingRefError as exc:
            repo.close()
            raise PlanUnavailableError(str(exc)) from None
        except ValueError:
            repo.close()
            raise PlanUnavailableError(
                f"{pr.label}: the policy repository has no commit {pr.head_sha[:12]}"
            ) from None
        except Exception:
            repo.close()
            raise
        return repo

    def _same_repository(self, name: str) -> bool:
        configured = self.settings.repository
        if configured.isdigit():  # a GitLab project number: the payload names the path
            return True
        return name.casefold() == configured.casefold()


def _load(repo: git.Repo, rev: str, *, label: str) -> loading.LoadResult:
    """The policy at `rev`, named `label@sha1:<sha>` (`pr-42@sha1:…`), never the checked-out
    branch."""
    try:
        sha = git_source.resolve(repo, rev=rev).sha
    except git_source.SourceError:
        raise PlanUnavailableError(f"the policy repository has no revision {rev!r}") from None
    revision = format_revision(label, sha)
    return loading.load_policy(git_source.read_commit(repo, sha), revision=revision)


def _plan_summary(document: dict[str, Any]) -> str:
    """The status line: what changes, what warns, how many devices it touches."""
    parts = [f"{len(document['changes'])} object(s) change"]
    if document["warnings"]:
        parts.append(f"{len(document['warnings'])} warning(s)")
    if document.get("fleetKnown"):
        parts.append(f"{len(document.get('devices', []))} device(s) affected")
    return ", ".join(parts)


def _invalid_comment(pr: events.PullRequest, result: loading.LoadResult, *, which: str) -> str:
    shown = [f"- {_code(str(p))}" for p in result.errors[:ERRORS_SHOWN]]
    more = len(result.errors) - ERRORS_SHOWN
    what = "head" if which == "head" else f"base branch `{pr.base_branch}`"
    lines = [
        f"### patchctl plan: {pr.label}",
        "",
        f"The {what} does not validate ({len(result.errors)} error(s)); nothing is planned.",
        "",
        *shown,
    ]
    if more > 0:
        lines.append(f"- … and {more} more (`patchctl validate --rev {pr.head_sha[:12]}`)")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """Policy text as inline code on one line; backticks inside cannot close it."""
    flat = " ".join(text.split()).replace("`", "'")
    return f"`{flat}`"


def apply_status(outcome: Outcome) -> tuple[str, CommitStatus] | None:
    """The `patchctl/apply` status a pass's outcome earns, on which commit; None when the pass
    says nothing about a commit (the source was unreachable). Purely computational."""
    if outcome.result == ReconcileResult.POLICY_INVALID and outcome.attempted_revision:
        enforced = outcome.applied_revision or "nothing"
        return _sha(outcome.attempted_revision), CommitStatus(
            StatusState.FAILURE,
            APPLY_CONTEXT,
            f"does not validate ({len(outcome.errors)} error(s)); still enforcing "
            f"{_short(enforced)}",
        )
    if outcome.result != ReconcileResult.APPLIED or not outcome.applied_revision:
        return None
    sha = _sha(outcome.applied_revision)
    verified = outcome.verified
    if verified is not None and verified.status == ConditionStatus.FALSE:
        reasons = "; ".join(verified.reasons) or verified.message
        return sha, CommitStatus(StatusState.FAILURE, APPLY_CONTEXT, f"not applied: {reasons}")
    return sha, CommitStatus(StatusState.SUCCESS, APPLY_CONTEXT, "applied by patchctl")


def _sha(revision: str) -> str:
    parsed = Revision.parse(revision)
    return parsed.sha if parsed else revision


def _short(revision: str) -> str:
    parsed = Revision.parse(revision)
    return parsed.short() if parsed else revision
