"""The policy tree of one revision, kept up to date file by file (the audit trail's walk).

Files are parsed by the one parser in `controller.sources.loading` (`parse_policy_file`, through
a `ParseCache` the reconcile's loader shares); a `PolicyTree` holds the `ParsedFile`s of one
revision and tells whether they validate together (cross-references, duplicates), re-checking
only what a swapped file could affect; its problems are `loading.load_parsed`'s, word for word.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from controller.core import references
from controller.kinds import (
    DeviceGroup,
    Document,
    ObjectKey,
    PatchWindow,
    Script,
    ScriptJob,
    Tenant,
)
from controller.sources import loading
from controller.sources.documents import Problem, RawDocument
from controller.sources.loading import ParsedFile, SourceFile

# References resolve against these kinds (references.detect_findings): when one of them changes,
# every object is checked again; otherwise only the objects that changed are.
REFERENCED_KINDS = frozenset({Tenant.KIND, DeviceGroup.KIND, Script.KIND})
PARSE_CACHE_SIZE = 2048  # parsed files kept by content, for reverts and rewrites


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
        self._keys_at: dict[str, tuple[ObjectKey, ...]] = {}  # path -> its objects' keys
        self._duplicated: set[ObjectKey] = set()
        self._context: dict[str, list[Document]] = {}  # path -> its Tenants, groups, scripts
        self._broken_files: set[str] = set()  # files with YAML or schema problems
        self._broken_references: set[str] = set()  # files with a cross-reference error
        self._unchecked: set[str] = set()
        self._recheck_all = False
        self._verdicts: dict[tuple[Any, ...], bool] = {}  # reference inputs -> has an error

    def replace(self, path: str, parsed: ParsedFile | None) -> None:
        """Put `parsed` at `path` (None: the file was deleted)."""
        self.files.pop(path, None)
        old_keys = self._keys_at.pop(path, ())
        new_keys = () if parsed is None else tuple(obj.key for obj in parsed.objects)
        if old_keys != new_keys:  # most edits keep a file's objects: no count changes then
            for key in old_keys:
                self._count(key, -1)
            for key in new_keys:
                self._count(key, +1)
        if new_keys:
            self._keys_at[path] = new_keys
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
        return loading.load_parsed(self.files.values(), revision=None).problems

    def objects_of(self, paths: Iterable[str]) -> list[tuple[str, Document]]:
        """(path, object) for every object defined in `paths`."""
        return [
            (path, obj) for path in paths if path in self.files for obj in self.files[path].objects
        ]


class KeyedFiles:
    """The objects of parsed files by key, built once per file for as long as it lives (one
    walk): a file is diffed as the new version of its path and again as the old one, and
    `Document.key` builds a new key at every call."""

    def __init__(self) -> None:
        # id(file) -> the file (so that its id is not reused meanwhile) and its objects' keys
        self._keys: dict[int, tuple[ParsedFile, tuple[ObjectKey, ...]]] = {}

    def keys_of(self, parsed: ParsedFile) -> tuple[ObjectKey, ...]:
        found = self._keys.get(id(parsed))
        if found is None:
            found = self._keys[id(parsed)] = (parsed, tuple(obj.key for obj in parsed.objects))
        return found[1]

    def objects_at(
        self, files: Mapping[str, ParsedFile], other: Mapping[str, ParsedFile], paths: Iterable[str]
    ) -> tuple[dict[ObjectKey, Document], dict[ObjectKey, str]]:
        """The objects of `files` at `paths` and the path of each, by key; a path whose parsed
        file is the very same in `other` holds no change and is left out."""
        objects: dict[ObjectKey, Document] = {}
        where: dict[ObjectKey, str] = {}
        for path in paths:
            parsed = files.get(path)
            if parsed is None or parsed is other.get(path):
                continue
            for key, obj in zip(self.keys_of(parsed), parsed.objects, strict=True):
                objects[key] = obj
                where[key] = path
        return objects, where


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


class ParseCache:
    """`loading.parse_policy_file`, remembered by content: the git blob id of the file's bytes
    (the newest `size` contents).

    Shared by a pass's loader and its audit walk, so a file is parsed once per pass, and kept
    across walks, so reverts and rewrites do not parse the same bytes twice. A content parses to
    the same objects wherever it lives (the path only labels problems), so a blob seen at one
    path is not parsed again at another: its objects are reused under the new path
    (`ParsedFile.source` is always the caller's). What names the path is never reused: a file
    with problems is parsed again for the new path, and the positioned documents of a reference
    parse are left out (`loading.load_parsed` parses again to locate a finding).
    """

    def __init__(self, size: int = PARSE_CACHE_SIZE) -> None:
        self.size = size
        self._parsed: dict[str, ParsedFile] = {}  # blob id -> the file as first parsed

    def parse(
        self,
        source: SourceFile,
        *,
        blob: str | None = None,
        plain: list[RawDocument] | loading.NotRead | None = loading.NOT_READ,
    ) -> ParsedFile:
        """`source` parsed; `blob`: the git blob id of `source.data`, when the caller has it;
        `plain`: its plain documents, when already read (`loading.parse_policy_file`)."""
        if source.data is None or source.refusal is not None:
            return loading.parse_policy_file(source)  # refused: nothing to parse or remember
        # In a SHA-256 repository git's ids and `blob_id` differ: both still name the content.
        key = blob or blob_id(source.data)
        found = self._parsed.get(key)
        if found is None:
            found = loading.parse_policy_file(source, plain=plain)
            if len(self._parsed) >= self.size:
                del self._parsed[next(iter(self._parsed))]
            self._parsed[key] = found
            return found
        return _moved(found, source)

    def known(self, path: str, blob: str) -> ParsedFile | None:
        """The blob parsed at `path` if its content was parsed before (its bytes need not be
        read again); None otherwise."""
        found = self._parsed.get(blob)
        if found is None:
            return None
        return _moved(found, SourceFile(path, found.source.data))

    def __contains__(self, blob: str) -> bool:
        return blob in self._parsed

    def data_of(self, blob: str) -> bytes | None:
        """The bytes of a blob parsed before (still remembered); None otherwise."""
        found = self._parsed.get(blob)
        return None if found is None else found.source.data


def blob_id(data: bytes) -> str:
    """The id git gives a blob holding `data` (`git hash-object`, SHA-1 repositories)."""
    header = b"blob %d\0" % len(data)
    return hashlib.sha1(header + data, usedforsecurity=False).hexdigest()


def _moved(parsed: ParsedFile, source: SourceFile) -> ParsedFile:
    """`parsed`, a parse of the same bytes, as a parse of `source` (maybe another path)."""
    if parsed.source == source:
        return parsed
    if parsed.problems:
        return loading.parse_policy_file(source)  # every problem names the path
    return ParsedFile(source, parsed.objects, parsed.lines, ())
