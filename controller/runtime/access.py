"""Who may approve: the server's access policy, and the verdict on every approving change.

The policy lives in the controller's own configuration, never in the policy repository, so a
pull request cannot loosen it: the `[access]` table of `patchctl.toml`, or a TOML file with the
same table given by path (`load_access`). It says, per tenant path, who may approve (email
globs; a partner's entry covers its clients; `"*"` covers every tenant and is the only entry for
objects without a tenant), whether commits must be signed, and by which trusted keys (SSH
allowed-signers lines, GPG public keys); and which committers are forges (GitHub, GitLab, ...)
whose merge commits are judged by the people the merge records rather than by the forge.

The decisions are pure: `judge_change(change, commit, policy)` returns a `Verdict`;
`judge_events` attaches verdicts to a walk's events and adds an `ApprovalRejected` event after
every change that is not applied; `filter_rejected(desired, events)` removes from a
DesiredState the approving objects whose current content no accepted change produced, so the
planner only ever sees accepted approvals. See docs/audit.md for the rules in full.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from controller.core.changes import (
    ChangeAction,
    EventType,
    ObjectChange,
    Verdict,
    as_json,
)
from controller.core.desired import DesiredState
from controller.kinds import KINDS, Approval, ObjectKey, Whitelist
from controller.kinds.common import TENANT_PATTERN, tenant_lineage
from controller.sources import signatures
from controller.sources.history import AuditEvent, CommitFacts, Person

EVERY_TENANT = "*"
DEFAULT_GUARDED_KINDS = (Approval.KIND, Whitelist.KIND)
DEFAULT_FORGE_COMMITTERS = ("noreply@github.com",)


class AccessError(Exception):
    """The access policy cannot be read; the message names the file and the field."""


# --- the configuration file ------------------------------------------------------------------


class _Config(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=lambda name: name.replace("_", "-"),
        populate_by_name=True,
    )


class KeyConfig(_Config):
    """One trusted key: exactly one of `ssh`, `gpg` or `gpg-file`."""

    name: str = Field(min_length=1, description="How tenants and forges refer to this key.")
    ssh: str | None = Field(
        default=None,
        description="An allowed-signers line: `alice@example.com ssh-ed25519 AAAA...`; the "
        "first field is the identity the key signs as.",
    )
    gpg: str | None = Field(default=None, description="An armored GPG public key.")
    gpg_file: str | None = Field(
        default=None,
        description="A file holding an armored GPG public key (relative paths: "
        "relative to the configuration file).",
    )
    fingerprint: str | None = Field(
        default=None,
        description="GPG: the fingerprint the key must have (a pin against a swapped key file).",
    )


class TenantConfig(_Config):
    """Who may approve for one tenant path (and, for a partner, its clients)."""

    approvers: tuple[str, ...] = Field(
        default=(),
        description="Email addresses allowed to approve; globs such as `*@acme.example`.",
    )
    require_signed: bool | None = Field(
        default=None,
        description="Commits must carry a good signature by one of `keys` (unset: inherited).",
    )
    keys: tuple[str, ...] = Field(default=(), description="Names of trusted keys (see `keys`).")


class ForgeConfig(_Config):
    """A forge whose merge commits are judged by the people they record."""

    name: str = Field(min_length=1, description="For messages: `github`, `gitlab`, ...")
    committers: tuple[str, ...] = Field(
        min_length=1, description="Committer emails (globs) of the forge's merge commits."
    )
    keys: tuple[str, ...] = Field(
        default=(), description="Names of the keys the forge signs its commits with."
    )


class AccessConfig(_Config):
    """The `[access]` table."""

    require_signed: bool = Field(
        default=False, description="The default for tenants that do not say."
    )
    guarded_kinds: tuple[str, ...] = Field(
        default=DEFAULT_GUARDED_KINDS,
        description="Kinds whose changes are judged; Approval and Whitelist both approve patches.",
    )
    keys: tuple[KeyConfig, ...] = Field(default=(), description="Trusted keys.")
    tenants: dict[str, TenantConfig] = Field(
        default_factory=dict, description="Per tenant path (`acme`, `acme/retail`) or `*`."
    )
    forges: tuple[ForgeConfig, ...] = Field(default=(), description="Forge committers.")


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
    trusted: signatures.TrustedKeys = dataclasses.field(default_factory=signatures.TrustedKeys)

    @classmethod
    def open(cls) -> AccessPolicy:
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

    def verifier(self) -> signatures.Verifier:
        """A Verifier holding every trusted key (close it, or use it as a context manager)."""
        return signatures.Verifier(self.trusted)


def load_access(path: Path, *, required: bool = False) -> AccessPolicy:
    """The `[access]` table of a TOML file (`patchctl.toml`, or a file of its own).

    A file without the table gives the open policy, unless `required`.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccessError(f"{path}: {exc}") from None
    table = data.get("access")
    if table is None:
        if required:
            raise AccessError(f"{path}: no [access] table")
        return AccessPolicy.open()
    if not isinstance(table, dict):
        raise AccessError(f"{path}: access: expected a table")
    return parse_access(table, base_dir=path.parent, source=str(path))


def parse_access(
    table: Mapping[str, Any], *, base_dir: Path, source: str = "patchctl.toml"
) -> AccessPolicy:
    """Validate an `[access]` table and resolve its keys (GPG keys are read with gpg)."""
    try:
        config = AccessConfig.model_validate(table)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise AccessError(f"{source}: {field_path(*first['loc'])}: {first['msg']}") from None
    return _compile(config, base_dir=base_dir, source=source)


def field_path(*parts: str | int) -> str:
    """`('tenants', 'acme/retail', 'keys')` → `access.tenants."acme/retail".keys`, as in TOML."""
    out = "access"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}"
        else:
            out += f'."{part}"'
    return out


def _compile(config: AccessConfig, *, base_dir: Path, source: str) -> AccessPolicy:
    unknown_kinds = sorted(set(config.guarded_kinds) - KINDS.keys())
    if unknown_kinds:
        raise AccessError(
            f"{source}: {field_path('guarded-kinds')}: {unknown_kinds[0]!r} is not one of "
            + ", ".join(sorted(KINDS))
        )
    keys: dict[str, frozenset[str]] = {}
    ssh_lines: list[str] = []
    gpg_keys: list[str] = []
    for position, key in enumerate(config.keys):
        where = f"{source}: {field_path('keys', position)}"
        if key.name in keys:
            raise AccessError(f"{where}.name: duplicate key name {key.name!r}")
        try:
            fingerprints, ssh, gpg = _read_key(key, base_dir=base_dir)
        except (signatures.SignatureError, OSError, ValueError) as exc:
            raise AccessError(f"{where}: {exc}") from None
        keys[key.name] = fingerprints
        ssh_lines.extend(ssh)
        gpg_keys.extend(gpg)

    def fingerprints_of(names: Sequence[str], where: str) -> frozenset[str]:
        missing = [name for name in names if name not in keys]
        if missing:
            known = ", ".join(sorted(keys)) or "none"
            raise AccessError(f"{where}: no key named {missing[0]!r} (known: {known})")
        return frozenset(fp for name in names for fp in keys[name])

    tenants: dict[str, TenantRule] = {}
    for scope, entry in config.tenants.items():
        where = f"{source}: {field_path('tenants', scope)}"
        if scope != EVERY_TENANT and not re.fullmatch(TENANT_PATTERN, scope):
            raise AccessError(f"{where}: not a tenant path such as `acme` or `acme/retail`, or `*`")
        tenants[scope] = TenantRule(
            scope,
            tuple(pattern.lower() for pattern in entry.approvers),
            entry.require_signed,
            fingerprints_of(entry.keys, f"{where}.keys"),
        )
    forges = tuple(
        Forge(
            forge.name,
            tuple(pattern.lower() for pattern in forge.committers),
            fingerprints_of(forge.keys, f"{source}: {field_path('forges', position, 'keys')}"),
        )
        for position, forge in enumerate(config.forges)
    )
    return AccessPolicy(
        enforced=True,
        require_signed=config.require_signed,
        guarded_kinds=frozenset(config.guarded_kinds),
        tenants=tenants,
        forges=forges,
        trusted=signatures.TrustedKeys(tuple(ssh_lines), tuple(gpg_keys)),
    )


def _read_key(key: KeyConfig, *, base_dir: Path) -> tuple[frozenset[str], list[str], list[str]]:
    """(fingerprints, allowed-signers lines, armored GPG keys) of one key entry."""
    given = [value for value in (key.ssh, key.gpg, key.gpg_file) if value is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of ssh, gpg or gpg-file")
    if key.ssh is not None:
        signatures.ssh_principals(key.ssh)
        return frozenset({signatures.ssh_fingerprint(key.ssh)}), [key.ssh.strip()], []
    armored = (
        (base_dir / key.gpg_file).read_text(encoding="utf-8")
        if key.gpg_file is not None
        else key.gpg or ""
    )
    fingerprints = frozenset(signatures.gpg_fingerprints(armored))
    if key.fingerprint is not None:
        pinned = key.fingerprint.replace(" ", "").upper()
        if pinned not in fingerprints:
            raise ValueError(f"the key's fingerprints do not include the pinned {pinned}")
    return fingerprints, [], [armored]


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
    if signature.status is signatures.SignatureStatus.BAD:
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
        if event.type is EventType.APPROVAL_REJECTED:
            continue
        change = event.change
        if change is None or change.key.kind not in policy.guarded_kinds:
            judged.append(event)
            continue
        verdict = judge_change(change, event.commit, policy)
        judged.append(dataclasses.replace(event, verdict=verdict))
        if not verdict.applied:
            judged.append(
                dataclasses.replace(event, type=EventType.APPROVAL_REJECTED, verdict=verdict)
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
            and event.type is not EventType.APPROVAL_REJECTED
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
