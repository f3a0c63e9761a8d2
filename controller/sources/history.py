"""The audit trail, read from the tracked branch's history: who changed which policy object when.

`walk(repo, branch)` follows the branch first-parent (the commits that landed on it: direct
pushes, merge commits, squash merges), loads the policy at every commit that touches a policy
file, diffs it against the previous valid revision and returns one `AuditEvent` per object
added, changed or removed, with the facts of the commit that made the change: author,
committer, dates, pull/merge request, review trailers and signature.

Fast by construction:
- one `git log --first-parent --raw` reads every commit's metadata, changed paths and blob ids
  (and, through `SIGNATURE_FORMAT`, its verified signature) in a single pass;
- one `git cat-file --batch` reads the changed blobs;
- a `HistoryCache` keeps the parsed documents of every policy file, so a commit costs the files
  it changed: unchanged files are neither read nor parsed again, and cross-references are
  re-checked only for the objects that changed (all of them when a Tenant, DeviceGroup or Script
  changed, since those are what references resolve against).

A commit whose policy does not validate yields a `PolicyInvalid` event with every error (exactly
what `patchctl validate` prints) and the trail continues from the last valid revision: the next
valid commit's events hold everything that changed since, each attributed to the last commit
that touched the object's file.

Incremental: pass the previous walk's `tip` as `since_sha` (and its `cache`) and only the new
commits are read. When `since_sha` is no longer an ancestor of the branch tip the branch was
force-pushed: a `HistoryRewritten` event names the old and new tips and the commits that left
the branch, the objects the rewrite undid come next (with no commit: nobody committed them),
and the walk continues from the common ancestor. Nothing recorded earlier is ever merged away.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import git
import yaml

from controller.core import changes, references
from controller.core.changes import EventType, ObjectChange, Verdict
from controller.core.desired import DesiredState, Origin
from controller.kinds import (
    DeviceGroup,
    Document,
    ObjectKey,
    PatchWindow,
    Script,
    ScriptJob,
    Tenant,
)
from controller.sources import documents, loading, signatures
from controller.sources import git as git_source
from controller.sources.documents import Position, Problem, RawDocument
from controller.sources.git import SourceError
from controller.sources.loading import SourceFile

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
# References resolve against these kinds (references.detect_findings): when one of them changes,
# every object is checked again; otherwise only the objects that changed are.
REFERENCED_KINDS = frozenset({Tenant.KIND, DeviceGroup.KIND, Script.KIND})
BLOB_BATCH = 2000  # blobs read per `git cat-file --batch` process
PARSE_CACHE_SIZE = 2048  # parsed files kept by content, for reverts and rewrites
RESUME_LOOKBACK = 200  # commits searched for the last valid one when resuming at an invalid one


# --- commit facts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A name and an email address, as git records them (emails compared lower-case)."""

    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Person | None:
        """`Name <email>` (a trailer value or a GPG user id) → Person; None when it has no email."""
        found = re.fullmatch(r"\s*(.*?)\s*<([^<>\s]+)>\s*", text)
        if found is None:
            return None
        return cls(found.group(1), found.group(2))

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class Trailer:
    """A `Key: value` line at the end of a commit message, as `git interpret-trailers` reads it."""

    key: str
    value: str

    @property
    def person(self) -> Person | None:
        return Person.parse(self.value)


REVIEW_TRAILERS = ("Reviewed-by", "Approved-by", "Co-authored-by")


class PullRequestStyle(StrEnum):
    """How a pull/merge request landed, told by the commit message a forge writes."""

    GITHUB_MERGE = "github-merge"  # "Merge pull request #12 from owner/branch"
    GITHUB_SQUASH = "github-squash"  # "Title (#12)"
    GITLAB = "gitlab"  # "See merge request group/project!34"
    GITEA = "gitea"  # "Merge pull request 'Title' (#12) from branch into main"
    BITBUCKET = "bitbucket"  # "Merged in branch (pull request #12)"
    AZURE_DEVOPS = "azure-devops"  # "Merged PR 12: Title"


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The pull/merge request a commit landed through; `ref` prints it as its forge does."""

    number: int
    style: PullRequestStyle
    project: str | None = None  # GitLab: the project path in "group/project!34"

    @property
    def ref(self) -> str:
        if self.style is PullRequestStyle.GITLAB:
            return f"{self.project or ''}!{self.number}"
        return f"#{self.number}"


# Tried in order; the first match wins. Squash ("(#12)" at the end of the subject) comes last
# because Gitea's merge subject contains the same pattern.
_PR_PATTERNS: tuple[tuple[PullRequestStyle, str, re.Pattern[str]], ...] = (
    (
        PullRequestStyle.GITHUB_MERGE,
        "subject",
        re.compile(r"^Merge pull request #(?P<number>\d+) from \S+"),
    ),
    (
        PullRequestStyle.GITEA,
        "subject",
        re.compile(r"^Merge pull request '.*' \(#(?P<number>\d+)\) from \S+ into \S+"),
    ),
    (
        PullRequestStyle.GITLAB,
        "message",
        re.compile(r"^See merge request (?P<project>\S+?)!(?P<number>\d+)\s*$", re.MULTILINE),
    ),
    (
        PullRequestStyle.BITBUCKET,
        "subject",
        re.compile(r"^Merged in \S+ \(pull request #(?P<number>\d+)\)"),
    ),
    (PullRequestStyle.AZURE_DEVOPS, "subject", re.compile(r"^Merged PR (?P<number>\d+):")),
    (PullRequestStyle.GITHUB_SQUASH, "subject", re.compile(r"\(#(?P<number>\d+)\)\s*$")),
)


_PR_HINT = re.compile(r"#\d|!\d|^Merged PR \d", re.MULTILINE)


def parse_pull_request(message: str) -> PullRequest | None:
    """The pull/merge request a commit message names, as GitHub, GitLab, Gitea, Bitbucket or
    Azure DevOps write it when they merge or squash one; None for an ordinary commit."""
    if _PR_HINT.search(message) is None:
        return None
    subject = message.split("\n", 1)[0].strip()
    for style, part, pattern in _PR_PATTERNS:
        found = pattern.search(subject if part == "subject" else message)
        if found is not None:
            project = found.groupdict().get("project")
            return PullRequest(int(found.group("number")), style, project)
    return None


@dataclass(frozen=True, slots=True)
class CommitFacts:
    """Everything the audit trail records about a commit.

    `merged_head_author` is, for a merge commit, the author of its second parent: the tip of
    the branch the pull request merged, i.e. the pull request's author as git recorded it.
    """

    sha: str
    parents: tuple[str, ...]
    author: Person
    committer: Person
    authored_at: datetime
    committed_at: datetime
    message: str
    pull_request: PullRequest | None
    trailers: tuple[Trailer, ...]
    signature: signatures.Signature
    merged_head_author: Person | None = None

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def trailer_people(self, *keys: str) -> tuple[Person, ...]:
        """The people named by trailers with these keys (case-insensitive), in message order."""
        wanted = {key.lower() for key in keys}
        found = (t.person for t in self.trailers if t.key.lower() in wanted)
        return tuple(person for person in found if person is not None)

    def to_dict(self) -> dict[str, Any]:
        signature = self.signature
        return {
            "sha": self.sha,
            "parents": list(self.parents),
            "author": _person_dict(self.author),
            "committer": _person_dict(self.committer),
            "authoredAt": self.authored_at.isoformat(),
            "committedAt": self.committed_at.isoformat(),
            "subject": self.subject,
            "message": self.message,
            "pullRequest": None
            if self.pull_request is None
            else {
                "number": self.pull_request.number,
                "style": str(self.pull_request.style),
                "ref": self.pull_request.ref,
            },
            "trailers": [{"key": t.key, "value": t.value} for t in self.trailers],
            "signature": {
                "status": str(signature.status),
                "key": signature.key,
                "primaryKey": signature.primary_key,
                "signer": signature.signer,
            },
            "mergedHeadAuthor": _person_dict(self.merged_head_author),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CommitFacts:
        """The inverse of `to_dict`: facts read back from the store."""
        signature = data["signature"]
        merged = data.get("mergedHeadAuthor")
        return cls(
            sha=data["sha"],
            parents=tuple(data["parents"]),
            author=Person(**data["author"]),
            committer=Person(**data["committer"]),
            authored_at=datetime.fromisoformat(data["authoredAt"]),
            committed_at=datetime.fromisoformat(data["committedAt"]),
            message=data["message"],
            pull_request=parse_pull_request(data["message"]),
            trailers=tuple(Trailer(t["key"], t["value"]) for t in data["trailers"]),
            signature=signatures.Signature(
                signatures.SignatureStatus(signature["status"]),
                signature["key"],
                signature["primaryKey"],
                signature["signer"],
            ),
            merged_head_author=Person(**merged) if merged else None,
        )


def _person_dict(person: Person | None) -> dict[str, str] | None:
    return None if person is None else {"name": person.name, "email": person.email}


# --- audit events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A force-push: the recorded tip left the branch; `dropped` are the commits that went with it
    (first-parent, oldest first; empty when the old tip is no longer in the repository)."""

    old_tip: str
    new_tip: str
    merge_base: str | None
    dropped: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail.

    `revision` is where the event took effect (`main@sha1:<sha>`); `commit` the commit that made
    the change, which differs from the revision's commit only when invalid commits came between
    (the change took effect at the next valid one). `commit` is None for what no commit did: a
    `HistoryRewritten` event and the changes the rewrite undid. `verdict` is set by the access
    checks (`controller.runtime.access.judge_events`) on changes to approving kinds.
    """

    type: EventType
    revision: str
    commit: CommitFacts | None
    change: ObjectChange | None = None
    path: str | None = None  # the object's file (after the change; before it for a removal)
    errors: tuple[str, ...] = ()  # PolicyInvalid: every error, as `patchctl validate` prints it
    rewrite: Rewrite | None = None
    verdict: Verdict | None = None

    @property
    def key(self) -> ObjectKey | None:
        return None if self.change is None else self.change.key

    @property
    def before(self) -> Mapping[str, Any] | None:
        return None if self.change is None else self.change.before

    @property
    def after(self) -> Mapping[str, Any] | None:
        return None if self.change is None else self.change.after

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the store and `patchctl audit --json`."""
        key = self.key
        return {
            "type": str(self.type),
            "revision": self.revision,
            "commit": None if self.commit is None else self.commit.to_dict(),
            "object": None
            if key is None
            else {"kind": key.kind, "tenant": key.tenant, "name": key.name},
            "action": None if self.change is None else str(self.change.action),
            "changeEvent": None if self.change is None else str(self.change.event),
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "errors": list(self.errors),
            "rewrite": None
            if self.rewrite is None
            else {
                "oldTip": self.rewrite.old_tip,
                "newTip": self.rewrite.new_tip,
                "mergeBase": self.rewrite.merge_base,
                "dropped": list(self.rewrite.dropped),
            },
            "verdict": None
            if self.verdict is None
            else {"applied": self.verdict.applied, "reason": self.verdict.reason},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """The inverse of `to_dict`: an event read back from the store (for `filter_rejected`)."""
        obj = data.get("object")
        change = None
        if obj is not None:
            change = ObjectChange(
                key=ObjectKey(obj["kind"], obj["tenant"], obj["name"]),
                action=changes.ChangeAction(data["action"]),
                event=EventType(data["changeEvent"]),
                before=data.get("before"),
                after=data.get("after"),
            )
        rewrite = data.get("rewrite")
        verdict = data.get("verdict")
        return cls(
            type=EventType(data["type"]),
            revision=data["revision"],
            commit=CommitFacts.from_dict(data["commit"]) if data.get("commit") else None,
            change=change,
            path=data.get("path"),
            errors=tuple(data.get("errors", ())),
            rewrite=Rewrite(
                rewrite["oldTip"],
                rewrite["newTip"],
                rewrite["mergeBase"],
                tuple(rewrite["dropped"]),
            )
            if rewrite
            else None,
            verdict=Verdict(verdict["applied"], verdict["reason"]) if verdict else None,
        )


# --- parsing policy files, fast --------------------------------------------------------------

_RESOLVED_MAX = 1 << 16


class _RememberingResolver(yaml.resolver.Resolver):
    """The safe loader's tag resolution, remembered per (node kind, scalar, implicit flags).

    Same answers as `yaml.resolver.Resolver` (a pure function of its arguments when, as in the
    safe loaders, no path resolvers are registered), without re-running its regexes for the
    keys and values every policy file repeats.
    """

    _resolved: ClassVar[dict[tuple[Any, ...], str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        key = (kind, value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if len(self._resolved) < _RESOLVED_MAX and (value is None or len(value) <= 64):
                self._resolved[key] = tag
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """No path resolvers are registered: nothing to track."""

    def ascend_resolver(self) -> None:
        """No path resolvers are registered: nothing to track."""


_FAST_LOADER: Any = None
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(CParser, documents.StrictConstructor, _RememberingResolver):
        """`yaml.CSafeLoader` with the strict constructor and the remembering resolver."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            documents.StrictConstructor.__init__(self)
            _RememberingResolver.__init__(self)

    _FAST_LOADER = _FastLoader

# libyaml's composer recurses in C without a depth limit (tens of thousands of nested levels
# crash the process), so it only sees small files with few nesting indicators; the rest, and
# anything with anchors (alias bombs), goes to the loader's own budgeted parser.
FAST_PARSE_MAX_BYTES = 64 * 1024
_CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")
FAST_PARSE_MAX_INDICATORS = 1000


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One policy file of a revision: its source, its valid objects and its own problems."""

    source: SourceFile
    objects: tuple[Document, ...]
    lines: tuple[int, ...]  # the line each object's document starts on
    problems: tuple[Problem, ...]  # YAML and schema problems; cross-references are checked later
    raw: tuple[RawDocument, ...] | None = None  # per object, with positions (reference parse)

    @property
    def path(self) -> str:
        return self.source.path


def parse_policy_file(source: SourceFile) -> ParsedFile:
    """A policy file's objects and problems, exactly as `load_policy` would find them.

    Small, plain files (no anchors, modest nesting) are read with libyaml first, which is about
    ten times faster; anything unusual, and any file with a problem, goes through the loader's
    own parser (`documents.parse_file`), which records the position of every field and guards
    against hostile input. Both build values with `documents.StrictConstructor`, and the fast
    path gives up on anything the strict constructor refuses (duplicate keys included), so the
    two accept exactly the same files. Raises nothing: every failure is a Problem.
    """
    return _parse_fast(source) or _parse_reference(source)


def _parse_fast(source: SourceFile) -> ParsedFile | None:
    data = source.data
    if (
        _FAST_LOADER is None
        or data is None
        or len(data) > FAST_PARSE_MAX_BYTES
        or b"&" in data  # anchors (and so aliases): left to the parser that budgets them
        # libyaml and PyYAML's scanner disagree on tabs and control characters (libyaml takes
        # `key: <tab>` as null, PyYAML refuses it): only the reference parser decides those.
        or _CONTROL_BYTES.search(data) is not None
        or sum(data.count(mark) for mark in (b"[", b"{", b"- ", b"? ")) > FAST_PARSE_MAX_INDICATORS
    ):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if documents.find_hidden_character(text) is not None:
        return None
    objects: list[Document] = []
    lines: list[int] = []
    loader = _FAST_LOADER(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                value = _construct_plain(node, loader)
            except _NotPlainError:
                value = loader.construct_document(node)
            if value is not None:
                start = Position(node.start_mark.line + 1, node.start_mark.column + 1)
                document = RawDocument(source.path, index, value, {(): start})
                obj, problems = loading.validate_document(document)
                if obj is None or problems:
                    return None
                objects.append(obj)
                lines.append(start.line)
            index += 1
    except Exception:  # noqa: BLE001 - any failure: the reference parser locates and reports it
        return None
    finally:
        loader.dispose()
    return ParsedFile(source, tuple(objects), tuple(lines), ())


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")
)


class _NotPlainError(Exception):
    """The document uses a YAML feature (merge keys, other tags) left to PyYAML's constructor."""


def _construct_plain(node: yaml.Node, loader: Any) -> Any:
    """The Python value of a plain document: strings, numbers, booleans, dates, lists, maps.

    What PyYAML's SafeConstructor builds for these, without its generic machinery (several
    times faster); scalars other than strings are still built by the loader's constructors.
    """
    tag = node.tag
    if tag == _STR_TAG:
        return node.value
    if tag == _MAP_TAG:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STR_TAG:
                key = key_node.value
            elif key_node.tag in _SCALAR_TAGS:
                key = loader.construct_object(key_node)
            else:
                raise _NotPlainError
            if key in mapping:  # a duplicate key: the reference parser names both lines
                raise _NotPlainError
            mapping[key] = _construct_plain(value_node, loader)
        return mapping
    if tag == _SEQ_TAG:
        return [_construct_plain(item, loader) for item in node.value]
    if tag in _SCALAR_TAGS:
        return loader.construct_object(node)
    raise _NotPlainError


def _parse_reference(source: SourceFile) -> ParsedFile:
    if source.data is None:
        return ParsedFile(source, (), (), (loading.refusal_problem(source),), ())
    raw, problems = documents.parse_file(source.path, source.data)
    objects: list[Document] = []
    raw_of_object: list[RawDocument] = []
    for document in raw:
        obj, document_problems = loading.validate_document(document)
        problems.extend(document_problems)
        if obj is not None:
            objects.append(obj)
            raw_of_object.append(document)
    lines = tuple(document.start.line for document in raw_of_object)
    return ParsedFile(source, tuple(objects), lines, tuple(problems), tuple(raw_of_object))


# --- the policy tree of one revision, kept up to date commit by commit ----------------------


class PolicyTree:
    """The parsed policy files of one revision, with what it takes to tell cheaply if it is valid.

    `replace` swaps one file; `is_valid` answers for the whole tree after re-checking only what
    the swapped files could have affected; `problems` gives the exact errors when it is not.

    Cross-references (`references.detect_findings`) resolve against Tenants, DeviceGroups and
    Scripts only. So an object's reference errors depend on its tenant, the groups its targets
    name and, for a PatchWindow or ScriptJob, the scripts: each changed object is checked
    against just those, and the answer is remembered until a Tenant, DeviceGroup or Script
    changes, when every object is checked again.
    """

    def __init__(self) -> None:
        self.files: dict[str, ParsedFile] = {}
        self._keys: Counter[ObjectKey] = Counter()
        self._duplicated: set[ObjectKey] = set()
        self._context: dict[str, list[Document]] = {}  # path -> its Tenants, groups, scripts
        self._broken_files: set[str] = set()  # files with YAML or schema problems
        self._broken_references: set[str] = set()  # files with a cross-reference error
        self._unchecked: set[str] = set()
        self._recheck_all = False
        self._verdicts: dict[tuple[Any, ...], bool] = {}  # reference inputs -> has an error

    def replace(self, path: str, parsed: ParsedFile | None) -> None:
        """Put `parsed` at `path` (None: the file was deleted)."""
        old = self.files.pop(path, None)
        for obj in old.objects if old is not None else ():
            self._count(obj.key, -1)
        if self._context.pop(path, None):
            self._recheck_all = True
        self._broken_files.discard(path)
        self._broken_references.discard(path)
        self._unchecked.add(path)
        if parsed is None:
            return
        self.files[path] = parsed
        if parsed.problems:
            self._broken_files.add(path)
        for obj in parsed.objects:
            self._count(obj.key, +1)
        context = [obj for obj in parsed.objects if obj.KIND in REFERENCED_KINDS]
        if context:
            self._context[path] = context
            self._recheck_all = True

    def _count(self, key: ObjectKey, delta: int) -> None:
        count = self._keys[key] + delta
        if count > 0:
            self._keys[key] = count
        else:
            del self._keys[key]
        if count > 1:
            self._duplicated.add(key)
        else:
            self._duplicated.discard(key)

    def is_valid(self) -> bool:
        """Whether the tree validates: no file problem, no duplicate, no reference error.

        True is final; False is confirmed (or overturned) by `problems()`.
        """
        if self._recheck_all:
            self._verdicts.clear()
            self._broken_references = self._paths_with_reference_errors(
                self.files.keys(), everything=True
            )
        elif self._unchecked:
            self._broken_references |= self._paths_with_reference_errors(
                self._unchecked & self.files.keys(), everything=False
            )
        self._unchecked.clear()
        self._recheck_all = False
        return not (self._broken_files or self._broken_references or self._duplicated)

    def _paths_with_reference_errors(self, paths: Iterable[str], *, everything: bool) -> set[str]:
        """The paths whose objects have a reference error; `everything`: `paths` is every file,
        so the objects are their own context."""
        broken: set[str] = set()
        unknown: list[tuple[str, Document, tuple[Any, ...]]] = []
        for path in paths:
            for obj in self.files[path].objects:
                inputs = _reference_inputs(obj)
                verdict = self._verdicts.get(inputs)
                if verdict is None:
                    unknown.append((path, obj, inputs))
                elif verdict:
                    broken.add(path)
        if not unknown:
            return broken
        context = [] if everything else self._context_for(obj for _, obj, _ in unknown)
        errors = {
            finding.index - len(context)
            for finding in references.detect_findings([*context, *(obj for _, obj, _ in unknown)])
            if not finding.warning and finding.index >= len(context)
        }
        for position, (path, _, inputs) in enumerate(unknown):
            has_error = position in errors
            if inputs[0] != _UNIQUE:
                self._verdicts[inputs] = has_error
            if has_error:
                broken.add(path)
        return broken

    def _context_for(self, objects: Iterable[Document]) -> list[Document]:
        """What references of `objects` resolve against: tenants, the groups they name, scripts."""
        group_names: set[str] = set()
        needs_scripts = False
        for obj in objects:
            targets = references.targets_of(obj)
            if targets is not None:
                group_names.update(targets.groups, targets.exclude.groups)
            needs_scripts |= isinstance(obj, PatchWindow | ScriptJob)
        return [
            obj
            for context in self._context.values()
            for obj in context
            if isinstance(obj, Tenant)
            or (isinstance(obj, DeviceGroup) and obj.name in group_names)
            or (needs_scripts and isinstance(obj, Script))
        ]

    def errors(self) -> tuple[str, ...]:
        """Nothing when the tree validates; else every error, as `patchctl validate` prints it.

        The quick check (`is_valid`) may be too cautious; the full check decides.
        """
        if self.is_valid():
            return ()
        return tuple(str(problem) for problem in self.problems() if not problem.warning)

    def problems(self) -> tuple[Problem, ...]:
        """Every problem of the tree, in the order and words of `loading.load_policy`."""
        ordered = [self.files[path] for path in sorted(self.files)]
        problems = [problem for parsed in ordered for problem in parsed.problems]
        owners = [(parsed, index) for parsed in ordered for index in range(len(parsed.objects))]
        objects = [parsed.objects[index] for parsed, index in owners]
        raw_cache: dict[str, tuple[RawDocument, ...]] = {}

        def raw_of(position: int) -> RawDocument:
            parsed, index = owners[position]
            if parsed.path not in raw_cache:
                raw = parsed.raw if parsed.raw is not None else _parse_reference(parsed.source).raw
                raw_cache[parsed.path] = raw or ()
            return raw_cache[parsed.path][index]

        problems.extend(loading.finding_problems(references.detect_findings(objects), raw_of))
        problems.sort(key=loading.reading_order)
        return tuple(problems)

    def objects_of(self, paths: Iterable[str]) -> list[tuple[str, Document]]:
        """(path, object) for every object defined in `paths`."""
        return [
            (path, obj) for path in paths if path in self.files for obj in self.files[path].objects
        ]


_UNIQUE = object()


def _reference_inputs(obj: Document) -> tuple[Any, ...]:
    """What an object's reference errors depend on, besides Tenants, DeviceGroups and Scripts.

    The tenant and the groups its targets name; PatchWindows and ScriptJobs also name scripts
    and are checked every time (`_UNIQUE`: never remembered).
    """
    if isinstance(obj, PatchWindow | ScriptJob):
        return (_UNIQUE, id(obj))
    targets = references.targets_of(obj)
    groups = (targets.groups, targets.exclude.groups) if targets is not None else ()
    return (obj.KIND, obj.tenant, groups)


def state_of(files: Mapping[str, ParsedFile], revision: str | None) -> DesiredState:
    """Parsed files as a DesiredState, objects in the order `load_policy` gives them."""
    objects: list[Document] = []
    origins: dict[ObjectKey, Origin] = {}
    for path in sorted(files):
        parsed = files[path]
        objects.extend(parsed.objects)
        for obj, line in zip(parsed.objects, parsed.lines, strict=True):
            origins[obj.key] = Origin(path, line)
    return DesiredState(revision=revision, objects=tuple(objects), origins=origins)


# --- the cache a walk leaves behind ----------------------------------------------------------


@dataclass
class HistoryCache:
    """What a walk knows at the commit it stopped at: hand it to the next walk of the branch.

    It holds the parsed policy files at `sha`, those of the last valid commit `valid_sha`, the
    commits since that one (when `sha` does not validate) and a small cache of parsed files by
    content, so reverts and rewrites do not parse the same bytes twice.
    """

    sha: str | None = None
    valid_sha: str | None = None
    tree: PolicyTree = field(default_factory=PolicyTree)
    valid_files: dict[str, ParsedFile] = field(default_factory=dict)
    pending: list[tuple[CommitFacts, frozenset[str]]] = field(default_factory=list)
    pending_paths: set[str] = field(default_factory=set)
    symlinks: set[str] = field(default_factory=set)
    _parsed: dict[tuple[str, bytes | None, str | None], ParsedFile] = field(
        default_factory=dict, repr=False
    )

    def parse(self, source: SourceFile) -> ParsedFile:
        """`parse_policy_file`, remembered by path and content."""
        key = (source.path, source.data, source.refusal)
        found = self._parsed.get(key)
        if found is None:
            found = parse_policy_file(source)
            if len(self._parsed) >= PARSE_CACHE_SIZE:
                del self._parsed[next(iter(self._parsed))]
            self._parsed[key] = found
        return found

    def valid_state(self, branch: str) -> DesiredState | None:
        """The policy at the last valid commit; None when no commit so far validated."""
        if self.valid_sha is None:
            return None
        return state_of(self.valid_files, git_source.format_revision(branch, self.valid_sha))


@dataclass(frozen=True)
class HistoryWalk:
    """The result of one walk: its events (oldest first), the tip reached, the cache to reuse.

    `tip` is the cursor for the next walk (`since_sha=walk.tip, cache=walk.cache`).
    `commits_read` counts the commits `git log` listed; `commits_loaded` those whose policy
    files changed and were parsed.
    """

    branch: str
    tip: str
    events: tuple[AuditEvent, ...]
    cache: HistoryCache
    commits_read: int
    commits_loaded: int

    @property
    def valid_revision(self) -> str | None:
        sha = self.cache.valid_sha
        return None if sha is None else git_source.format_revision(self.branch, sha)

    def state(self) -> DesiredState | None:
        """The policy at the last valid commit of the branch."""
        return self.cache.valid_state(self.branch)


# --- reading git -----------------------------------------------------------------------------

_LOG_FORMAT = (
    "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00"
    f"{signatures.SIGNATURE_FORMAT}%x00"
    "%(trailers:only=true,unfold=true,separator=%x1f)%x00%B"
)
_HEADER_FIELDS = 10 + signatures.SIGNATURE_FIELDS
_SHA = re.compile(rb"^[0-9a-f]{40}([0-9a-f]{24})?$")
_NO_BLOB = "0" * 40


@dataclass(frozen=True, slots=True)
class FileChange:
    """One path a commit changed against its first parent (`git log --raw`)."""

    path: str
    old_mode: str
    new_mode: str
    blob: str | None  # the new content's blob id; None when the file was deleted

    @property
    def involves_symlink(self) -> bool:
        return SYMLINK_MODE in (self.old_mode, self.new_mode)


def iter_log(
    repo: git.Repo,
    revisions: Sequence[str],
    *,
    verifier: signatures.Verifier,
    batch_size: int = BLOB_BATCH,
) -> Iterator[list[tuple[CommitFacts, tuple[FileChange, ...]]]]:
    """The first-parent commits of `revisions`, oldest first, with the paths each changed.

    One streaming `git log` process reads metadata, trailers, verified signatures and raw
    changes together; commits come in batches, so git keeps producing while the caller works.
    Merge commits get the author of their merged head (one extra git call per batch).
    """
    command = [
        *verifier.git_options(),
        "-c",
        "log.showSignature=false",
        "log",
        "-z",
        "--reverse",
        "--first-parent",
        "--diff-merges=first-parent",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--root",
        "--encoding=UTF-8",
        f"--format={_LOG_FORMAT}",
        *revisions,
        "--",
    ]
    batch: list[tuple[CommitFacts, tuple[FileChange, ...]]] = []
    for facts, files in _parse_log(_stream_git(repo, command, env=verifier.environment())):
        signature = verifier.at_signing_time(repo, facts.sha, facts.signature)
        if signature != facts.signature:  # judged at signing time, not today (signatures.py)
            facts = dataclasses.replace(facts, signature=signature)  # noqa: PLW2901
        batch.append((facts, files))
        if len(batch) >= batch_size:
            yield _with_merged_heads(repo, batch)
            batch = []
    if batch:
        yield _with_merged_heads(repo, batch)


def _stream_git(repo: git.Repo, args: Sequence[str], *, env: Mapping[str, str]) -> Iterator[bytes]:
    """The NUL-separated fields git prints, as they come; GitCommandError when git fails."""
    command = [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", f"--git-dir={repo.git_dir}", *args]
    environment = {**os.environ, "LC_ALL": "C", "LANGUAGE": "C", **env}
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # noqa: S603 - git, with arguments built here
            command, stdout=subprocess.PIPE, stderr=errors, env=environment
        )
        if process.stdout is None:  # pragma: no cover - stdout is a pipe
            raise SourceError("git log did not start")
        try:
            rest = b""
            while chunk := process.stdout.read(1 << 18):
                fields = (rest + chunk).split(b"\0")
                rest = fields.pop()
                yield from fields
            if rest:
                yield rest
        finally:
            process.stdout.close()
            status = process.wait()
        if status != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise git.GitCommandError(command, status, message)


def _with_merged_heads(
    repo: git.Repo, batch: list[tuple[CommitFacts, tuple[FileChange, ...]]]
) -> list[tuple[CommitFacts, tuple[FileChange, ...]]]:
    heads = [facts.parents[1] for facts, _ in batch if facts.is_merge]
    if not heads:
        return batch
    authors = _authors(repo, heads)
    return [
        (
            dataclasses.replace(facts, merged_head_author=authors.get(facts.parents[1]))
            if facts.is_merge
            else facts,
            files,
        )
        for facts, files in batch
    ]


def _parse_log(fields: Iterable[bytes]) -> Iterator[tuple[CommitFacts, tuple[FileChange, ...]]]:
    """Records of `_LOG_FORMAT` fields, each followed by `--raw -z` entries (`:meta`, path)."""
    header: list[bytes] = []
    changed: list[FileChange] = []
    entry: list[str] | None = None  # the meta of a raw entry, waiting for its path
    for value in fields:
        if entry is not None:
            blob = entry[3] if entry[3].strip("0") else None
            changed.append(
                FileChange(value.decode("utf-8", "surrogateescape"), entry[0], entry[1], blob)
            )
            entry = None
            continue
        if len(header) == _HEADER_FIELDS:
            meta = value.lstrip(b"\n")
            if meta.startswith(b":"):
                entry = meta[1:].decode().split(" ")
                continue
            yield _facts(header), tuple(changed)
            header, changed = [], []
        if not header and not value.strip():
            continue  # between records
        if not header and not _SHA.match(value.strip()):
            raise SourceError(f"unexpected `git log` output near {value[:60]!r}")
        header.append(value)
    if len(header) == _HEADER_FIELDS:
        yield _facts(header), tuple(changed)


def _facts(header: list[bytes]) -> CommitFacts:
    text = [value.decode("utf-8", "replace") for value in header]
    sha, parents, author, author_email, authored, committer, committer_email, committed = text[:8]
    signature = signatures.parse_signature(text[8 : 8 + signatures.SIGNATURE_FIELDS])
    trailer_text, message = text[8 + signatures.SIGNATURE_FIELDS :]
    message = message.rstrip("\n")
    return CommitFacts(
        sha=sha.strip(),
        parents=tuple(parents.split()),
        author=Person(author, author_email),
        committer=Person(committer, committer_email),
        authored_at=datetime.fromisoformat(authored),
        committed_at=datetime.fromisoformat(committed),
        message=message,
        pull_request=parse_pull_request(message),
        trailers=parse_trailers(trailer_text),
        signature=signature,
    )


def parse_trailers(text: str) -> tuple[Trailer, ...]:
    """Trailers as git prints them with `%(trailers:only,unfold,separator=%x1f)`."""
    found: list[Trailer] = []
    for line in text.replace("\n", "\x1f").split("\x1f"):
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            found.append(Trailer(key.strip(), value.strip()))
    return tuple(found)


def _authors(repo: git.Repo, shas: Sequence[str]) -> dict[str, Person]:
    stdout = signatures.git_with_input(
        repo,
        ["log", "--no-walk=unsorted", "--stdin", "--format=%H%x00%an%x00%ae%x00"],
        ("\n".join(dict.fromkeys(shas)) + "\n").encode(),
    )
    fields = [token.strip() for token in stdout.decode("utf-8", "replace").split("\0")]
    return {
        fields[at]: Person(fields[at + 1], fields[at + 2]) for at in range(0, len(fields) - 2, 3)
    }


def read_blobs(repo: git.Repo, blobs: Iterable[str]) -> dict[str, bytes]:
    """The content of each blob, through `git cat-file --batch` (one process per batch)."""
    wanted = list(dict.fromkeys(blobs))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), BLOB_BATCH):
        batch = wanted[start : start + BLOB_BATCH]
        stdout = signatures.git_with_input(
            repo, ["cat-file", "--batch"], ("\n".join(batch) + "\n").encode()
        )
        at = 0
        while at < len(stdout):
            end = stdout.index(b"\n", at)
            header = stdout[at:end].split(b" ")
            if len(header) < 3:  # "<sha> missing"
                at = end + 1
                continue
            size = int(header[2])
            found[header[0].decode()] = stdout[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
    return found


def _read_commit(repo: git.Repo, sha: str) -> list[SourceFile]:
    """The policy files of a commit, without the ones left out with a warning (submodules):
    the log leaves gitlinks out too, so both ways of reading a commit hold the same paths."""
    return [source for source in git_source.read_commit(repo, sha) if not source.ignored]


def _symlink_paths(repo: git.Repo, sha: str) -> set[str]:
    listing = repo.git.ls_tree("-r", "-z", sha, "--", *loading.POLICY_DIRS)
    found: set[str] = set()
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.startswith(SYMLINK_MODE) and loading.is_policy_path(path):
            found.add(path)
    return found


def _is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
    except git.GitCommandError:
        return False
    return True


def _merge_base(repo: git.Repo, one: str, other: str) -> str | None:
    try:
        return str(repo.git.merge_base(one, other)).strip() or None
    except git.GitCommandError:
        return None


def _exists(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except git.GitCommandError:
        return False
    return True


def _first_parent_shas(repo: git.Repo, *revisions: str) -> list[str]:
    output = str(repo.git.rev_list("--first-parent", "--reverse", *revisions))
    return output.split()


def resolve_tip(repo: git.Repo, branch: str) -> str:
    """The commit the branch points at; SourceError when there is no such branch."""
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
    except git.GitCommandError:
        raise SourceError(f"branch {branch!r} does not exist") from None


# --- the walk --------------------------------------------------------------------------------


def walk(
    repo: git.Repo,
    branch: str,
    *,
    since_sha: str | None = None,
    cache: HistoryCache | None = None,
    verifier: signatures.Verifier | None = None,
) -> HistoryWalk:
    """The audit events of `branch` after `since_sha` (the whole branch when None).

    Pass the previous walk's `tip` and `cache` to read only the new commits; without the cache
    the policy at `since_sha` is loaded once to diff against. `verifier` holds the trusted keys
    signatures are checked against (none: every signed commit is `unknown-key`).
    """
    if verifier is None:
        with signatures.Verifier() as own:
            return walk(repo, branch, since_sha=since_sha, cache=cache, verifier=own)
    walker = _Walker(repo, branch, verifier)
    return walker.run(since_sha, cache)


class _Walker:
    """One walk: the git reads, then the commits applied to the cache one by one."""

    def __init__(self, repo: git.Repo, branch: str, verifier: signatures.Verifier) -> None:
        self.repo = repo
        self.branch = branch
        self.verifier = verifier
        self.events: list[AuditEvent] = []
        self.loaded = 0

    def revision(self, sha: str) -> str:
        return git_source.format_revision(self.branch, sha)

    def run(self, since_sha: str | None, cache: HistoryCache | None) -> HistoryWalk:
        tip = resolve_tip(self.repo, self.branch)
        if since_sha is None:
            cache, revisions = HistoryCache(), [tip]
        elif since_sha == tip:
            cache = cache if cache is not None and cache.sha == tip else self.cache_at(tip)
            return HistoryWalk(self.branch, tip, (), cache, 0, 0)
        elif _is_ancestor(self.repo, since_sha, tip):
            if cache is None or cache.sha != since_sha:
                cache = self.cache_at(since_sha)
            revisions = [f"^{since_sha}", tip]
        else:
            cache, revisions = self.rewritten(since_sha, tip, cache)
        read = 0
        for batch in iter_log(self.repo, revisions, verifier=self.verifier):
            blobs = read_blobs(
                self.repo,
                (
                    change.blob
                    for _, files in batch
                    for change in files
                    if change.blob is not None and loading.is_policy_path(change.path)
                ),
            )
            for facts, files in batch:
                self.apply(cache, facts, files, blobs)
            read += len(batch)
        return HistoryWalk(self.branch, tip, tuple(self.events), cache, read, self.loaded)

    # --- one commit ---

    def apply(
        self,
        cache: HistoryCache,
        facts: CommitFacts,
        files: Sequence[FileChange],
        blobs: Mapping[str, bytes],
    ) -> None:
        policy = [
            change
            for change in files
            if loading.is_policy_path(change.path)
            and GITLINK_MODE not in (change.old_mode, change.new_mode)
        ]
        cache.sha = facts.sha
        if not policy and not cache.symlinks:
            return
        if cache.symlinks or any(change.involves_symlink for change in policy):
            changed = self.reload(cache, facts.sha)
        else:
            for change in policy:
                if change.blob is None:
                    cache.tree.replace(change.path, None)
                    continue
                data = blobs.get(change.blob)
                source = SourceFile(
                    change.path, data, None if data is not None else "blob missing from the clone"
                )
                cache.tree.replace(change.path, cache.parse(source))
            changed = {change.path for change in policy}
        if not changed:
            return
        self.loaded += 1
        cache.pending.append((facts, frozenset(changed)))
        cache.pending_paths |= changed
        errors = cache.tree.errors()
        if not errors:
            self.settle(cache, facts)
            return
        self.events.append(
            AuditEvent(EventType.POLICY_INVALID, self.revision(facts.sha), facts, errors=errors)
        )

    def reload(self, cache: HistoryCache, sha: str) -> set[str]:
        """Read a whole commit again: symlinks may point at files that changed elsewhere."""
        fresh = {source.path: cache.parse(source) for source in _read_commit(self.repo, sha)}
        current = cache.tree.files
        changed = {
            path
            for path in current.keys() | fresh.keys()
            if path not in current
            or path not in fresh
            or current[path].source != fresh[path].source
        }
        for path in changed:
            cache.tree.replace(path, fresh.get(path))
        cache.symlinks = _symlink_paths(self.repo, sha)
        return changed

    def settle(self, cache: HistoryCache, facts: CommitFacts) -> None:
        """A valid commit: the changes since the last valid one become events."""
        paths = cache.pending_paths
        before = [
            (path, obj)
            for path in paths
            if path in cache.valid_files
            for obj in cache.valid_files[path].objects
        ]
        after = cache.tree.objects_of(paths)
        before_path = {obj.key: path for path, obj in before}
        after_path = {obj.key: path for path, obj in after}
        revision = self.revision(facts.sha)
        for change in changes.diff_objects((obj for _, obj in before), (obj for _, obj in after)):
            path = after_path.get(change.key) or before_path.get(change.key)
            touched = {after_path.get(change.key), before_path.get(change.key)}
            author = next(
                (commit for commit, changed in reversed(cache.pending) if touched & changed),
                facts,
            )
            self.events.append(AuditEvent(change.event, revision, author, change, path))
        for path in paths:
            if path in cache.tree.files:
                cache.valid_files[path] = cache.tree.files[path]
            else:
                cache.valid_files.pop(path, None)
        cache.valid_sha = facts.sha
        cache.pending.clear()
        cache.pending_paths = set()

    # --- starting points ---

    def cache_at(self, sha: str) -> HistoryCache:
        """A cache for the policy at `sha`, read in full (and its last valid commit, if not it)."""
        cache = HistoryCache(sha=sha)
        for source in _read_commit(self.repo, sha):
            cache.tree.replace(source.path, cache.parse(source))
        cache.symlinks = _symlink_paths(self.repo, sha)
        if not cache.tree.errors():
            cache.valid_sha, cache.valid_files = sha, dict(cache.tree.files)
            return cache
        parents = self.repo.commit(sha).parents
        older_shas = (
            _first_parent_shas(self.repo, parents[0].hexsha, f"--max-count={RESUME_LOOKBACK}")
            if parents
            else []
        )
        for older in reversed(older_shas):
            tree = PolicyTree()
            for source in _read_commit(self.repo, older):
                tree.replace(source.path, cache.parse(source))
            if not tree.errors():
                cache.valid_sha, cache.valid_files = older, dict(tree.files)
                break
        cache.pending_paths = {
            path
            for path in cache.tree.files.keys() | cache.valid_files.keys()
            if cache.tree.files.get(path) != cache.valid_files.get(path)
        }
        return cache

    def rewritten(
        self, old_tip: str, new_tip: str, cache: HistoryCache | None
    ) -> tuple[HistoryCache, list[str]]:
        """A force-push: report it, undo what left the branch, continue from the common base."""
        old_known = _exists(self.repo, old_tip)
        base = _merge_base(self.repo, old_tip, new_tip) if old_known else None
        dropped = (
            _first_parent_shas(self.repo, old_tip, *([f"^{base}"] if base else []))
            if old_known
            else []
        )
        self.events.append(
            AuditEvent(
                EventType.HISTORY_REWRITTEN,
                self.revision(new_tip),
                None,
                rewrite=Rewrite(old_tip, new_tip, base, tuple(dropped)),
            )
        )
        if cache is None or cache.sha != old_tip:
            cache = self.cache_at(old_tip) if old_known else None
        base_cache = self.cache_at(base) if base is not None else HistoryCache()
        if cache is not None:
            undo_revision = self.revision(base or new_tip)
            before = cache.valid_files
            after = base_cache.valid_files
            before_path = {obj.key: path for path, f in before.items() for obj in f.objects}
            after_path = {obj.key: path for path, f in after.items() for obj in f.objects}
            for change in changes.diff_objects(
                (obj for f in before.values() for obj in f.objects),
                (obj for f in after.values() for obj in f.objects),
            ):
                path = after_path.get(change.key) or before_path.get(change.key)
                self.events.append(AuditEvent(change.event, undo_revision, None, change, path))
        revisions = [f"^{base}", new_tip] if base is not None else [new_tip]
        return base_cache, revisions
