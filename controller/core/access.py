"""Who may approve: the compiled access policy and the verdict on every approving change.

Purely computational, no side effects: `judge_change(change, commit, policy)` returns a
`Verdict`; `judge_events` attaches verdicts to a walk's events and adds an `ApprovalRejected`
event after every change that is not applied; `filter_rejected(desired, events)` removes from a
DesiredState the approving objects whose current content no accepted change produced, so the
planner only ever sees accepted approvals. See docs/audit.md for the rules in full.

The policy is read from the controller's own configuration by `controller.runtime.access`
(never from the policy repository, so a pull request cannot loosen it).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Self

from controller.core.audit import AuditEvent
from controller.core.changes import AuditEventType, ChangeAction, ObjectChange, Verdict, as_json
from controller.core.commits import CommitFacts, Person, SignatureStatus
from controller.core.desired import DesiredState
from controller.kinds import Approval, ObjectKey, Whitelist
from controller.kinds.common import tenant_lineage

EVERY_TENANT = "*"
DEFAULT_GUARDED_KINDS = (Approval.KIND, Whitelist.KIND)


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """Keys the server trusts: SSH allowed-signers lines and armored GPG public keys."""

    ssh_allowed_signers: tuple[str, ...] = ()
    gpg_public_keys: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ssh_allowed_signers or self.gpg_public_keys)

    def digest(self) -> str:
        """A short fingerprint of the whole set: it changes when a key is added, removed, or
        replaced (a GPG key re-exported with its revocation or a new expiry)."""
        text = "\0".join((*self.ssh_allowed_signers, "\1", *self.gpg_public_keys))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- the compiled policy ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantRule:
    """One `[access.tenants."<scope>"]` entry, its key names resolved to fingerprints."""

    scope: str
    approvers: tuple[str, ...]
    require_signed: bool | None
    fingerprints: frozenset[str]


@dataclass(frozen=True, slots=True)
class Forge:
    """A forge: its committer identities and the fingerprints of the keys it signs with."""

    name: str
    committers: tuple[str, ...]
    fingerprints: frozenset[str]

    def made(self, commit: CommitFacts) -> bool:
        return matching_pattern(commit.committer.email, self.committers) is not None


@dataclass(frozen=True, slots=True)
class Rules:
    """What applies to one tenant: its entry, its partner's and `*`, merged."""

    tenant: str | None
    approvers: tuple[str, ...]
    require_signed: bool
    fingerprints: frozenset[str]

    @property
    def scope(self) -> str:
        return self.tenant or "objects of every tenant"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The server's access policy. `enforced` False (no `[access]` table): every change applies."""

    enforced: bool
    require_signed: bool = False
    guarded_kinds: frozenset[str] = frozenset(DEFAULT_GUARDED_KINDS)
    tenants: Mapping[str, TenantRule] = dataclasses.field(default_factory=dict)
    forges: tuple[Forge, ...] = ()
    trusted: TrustedKeys = dataclasses.field(default_factory=TrustedKeys)

    @classmethod
    def open(cls) -> Self:
        """No access policy: every change is applied (and the verdict says so)."""
        return cls(enforced=False)

    def rules_for(self, tenant: str | None) -> Rules:
        """The rules for an object of `tenant`: approvers and keys of the tenant, its partner
        and `*` together; `require_signed` from the nearest entry that sets it."""
        scopes = (*(tenant_lineage(tenant) if tenant else ()), EVERY_TENANT)
        entries = [self.tenants[scope] for scope in scopes if scope in self.tenants]
        require = next(
            (e.require_signed for e in entries if e.require_signed is not None),
            self.require_signed,
        )
        return Rules(
            tenant=tenant,
            approvers=tuple(pattern for entry in entries for pattern in entry.approvers),
            require_signed=require,
            fingerprints=frozenset(fp for entry in entries for fp in entry.fingerprints),
        )

    def forge_of(self, commit: CommitFacts) -> Forge | None:
        return next((forge for forge in self.forges if forge.made(commit)), None)


# --- verdicts --------------------------------------------------------------------------------


def matching_pattern(email: str, patterns: Iterable[str]) -> str | None:
    """The first approver pattern (a glob, case-insensitive) that `email` matches."""
    address = email.strip().lower()
    return next((p for p in patterns if fnmatch.fnmatchcase(address, p)), None)


def judge_change(  # noqa: PLR0911 - one return per rule, in the order the docstring gives
    change: ObjectChange, commit: CommitFacts | None, policy: AccessPolicy
) -> Verdict:
    """Whether a change takes effect, and why. Purely computational, no side effects.

    The rules, in order: without an access policy everything applies; kinds that approve
    nothing (not in `guarded_kinds`) apply; removals and expiries apply (they only narrow what
    is approved); what no commit did (a history rewrite restoring an object) does not; a
    commit whose signature is bad does not; a forge's commit is judged by the people it
    records (`_judge_forge`); any other commit by its verified signer when the tenant requires
    signatures, else by its signer when it carries a good trusted signature, else its author.
    """
    if not policy.enforced:
        return Verdict(applied=True, reason="no access policy is configured")
    kind = change.key.kind
    if kind not in policy.guarded_kinds:
        return Verdict(applied=True, reason=f"{kind} changes are not access-controlled")
    if change.action is ChangeAction.REMOVED:
        return Verdict(applied=True, reason="a removal only narrows what is approved")
    if change.action is ChangeAction.EXPIRED:
        return Verdict(applied=True, reason="an expiry only narrows what is approved")
    rules = policy.rules_for(change.key.tenant)
    if commit is None:
        return Verdict(
            applied=False,
            reason="restored by a rewrite of the branch history, not by a reviewed commit",
        )
    signature = commit.signature
    if signature.status is SignatureStatus.BAD:
        return Verdict(
            applied=False,
            reason=f"commit {commit.sha[:12]} has a bad signature: it was altered after signing",
        )
    if not rules.approvers:
        return Verdict(
            applied=False, reason=f"the access policy names no approvers for {rules.scope}"
        )
    forge = policy.forge_of(commit)
    if forge is not None:
        return _judge_forge(commit, forge, rules)
    return _judge_commit(commit, rules)


def _judge_commit(commit: CommitFacts, rules: Rules) -> Verdict:
    signature = commit.signature
    trusted = signature.is_good and bool(signature.fingerprints() & rules.fingerprints)
    short = commit.sha[:12]
    if rules.require_signed and not trusted:
        if signature.is_good:
            return Verdict(
                applied=False,
                reason=f"commit {short} is signed by key {signature.key}, which is not trusted "
                f"for {rules.scope}",
            )
        return Verdict(
            applied=False,
            reason=f"commit {short} is {signature.status}; {rules.scope} requires commits "
            "signed by a trusted key",
        )
    if trusted:
        identity, role = signature.signer_email, "signer"
    else:
        identity, role = commit.author.email, "author"
    if identity is None:
        return Verdict(applied=False, reason=f"the signature of {short} names no identity")
    pattern = matching_pattern(identity, rules.approvers)
    if pattern is None:
        return Verdict(
            applied=False,
            reason=f"{role} {identity} of commit {short} may not approve for {rules.scope}",
        )
    return Verdict(
        applied=True,
        reason=f"{role} {identity} may approve for {rules.scope} (matches {pattern!r})",
    )


def _judge_forge(commit: CommitFacts, forge: Forge, rules: Rules) -> Verdict:
    """A forge's commit: signed by the forge's key (when signatures are required), and
    accepted when one of the people it records may approve: its author (the merger of a
    merge commit, the pull request's author for a squash), the author of the merged head (a
    merge commit's second parent: the pull request's author), or an `Approved-by:` or
    `Reviewed-by:` trailer. `Co-authored-by:` names contributors, not approvers: it never counts.
    """
    short = commit.sha[:12]
    signature = commit.signature
    if rules.require_signed and not (
        signature.is_good and signature.fingerprints() & forge.fingerprints
    ):
        return Verdict(
            applied=False,
            reason=f"{forge.name} commit {short} is {signature.status}, not signed by a key of "
            f"{forge.name}; {rules.scope} requires signed commits",
        )
    candidates: list[tuple[str, Person]] = [("author", commit.author)]
    if commit.is_merge and commit.merged_head_author is not None:
        candidates.append(("pull request author", commit.merged_head_author))
    candidates.extend(("approver", person) for person in commit.trailer_people("Approved-by"))
    candidates.extend(("reviewer", person) for person in commit.trailer_people("Reviewed-by"))
    pr = f" of {commit.pull_request.ref}" if commit.pull_request is not None else ""
    for role, person in candidates:
        pattern = matching_pattern(person.email, rules.approvers)
        if pattern is not None:
            return Verdict(
                applied=True,
                reason=f"{forge.name} merge {short}{pr}: {role} {person.email} may approve for "
                f"{rules.scope} (matches {pattern!r})",
            )
    named = ", ".join(sorted({person.email for _, person in candidates}))
    return Verdict(
        applied=False,
        reason=f"{forge.name} merge {short}{pr}: none of {named} may approve for {rules.scope}",
    )


def judge_events(events: Iterable[AuditEvent], policy: AccessPolicy) -> tuple[AuditEvent, ...]:
    """The events with a verdict on every change of a guarded kind, each change that is not
    applied followed by an `ApprovalRejected` event (same commit, object and content).

    Idempotent: `ApprovalRejected` events in the input are dropped and judged again, so a
    changed access policy can be applied to a recorded history.
    """
    judged: list[AuditEvent] = []
    for event in events:
        if event.type is AuditEventType.APPROVAL_REJECTED:
            continue
        change = event.change
        if change is None or change.key.kind not in policy.guarded_kinds:
            judged.append(event)
            continue
        verdict = judge_change(change, event.commit, policy)
        judged.append(dataclasses.replace(event, verdict=verdict))
        if not verdict.applied:
            judged.append(
                dataclasses.replace(event, type=AuditEventType.APPROVAL_REJECTED, verdict=verdict)
            )
    return tuple(judged)


def filter_rejected(desired: DesiredState, events: Iterable[AuditEvent]) -> DesiredState:
    """The DesiredState the planner may act on: approving objects that were not accepted removed.

    `events` are the judged events of the branch up to `desired.revision`, oldest first (as
    `judge_events` returns them, or read back from the store). For every object of a guarded
    kind, the last judged change of its key decides: the object stays when that change was
    applied and produced exactly the current content; it goes when that change was rejected,
    or when its content differs (a change no verdict covers: fail closed). An object no
    judged event mentions stays (nothing is known against it). Purely computational.
    """
    latest: dict[ObjectKey, AuditEvent] = {}
    for event in events:
        if (
            event.change is not None
            and event.verdict is not None
            and event.type is not AuditEventType.APPROVAL_REJECTED
        ):
            latest[event.change.key] = event
    if not latest:
        return desired
    kept = []
    for obj in desired.objects:
        decided = latest.get(obj.key)
        if decided is None or (
            decided.verdict is not None
            and decided.verdict.applied
            and decided.after == as_json(obj)
        ):
            kept.append(obj)
    if len(kept) == len(desired.objects):
        return desired
    return DesiredState(revision=desired.revision, objects=tuple(kept), origins=desired.origins)
