"""The parse cache keys on content (the git blob id) and never hands out another path's parse."""

from __future__ import annotations

import subprocess

import pytest
from historyrepos import History, approval

from controller.core.changes import AuditEventType
from controller.sources import git as git_source
from controller.sources import history, loading, parseahead
from controller.sources.loading import SourceFile
from controller.sources.policytree import ParseCache, blob_id

SHARED = approval("shared", "USN-1-1")
# An unknown field: a schema problem, located at the line and column it was written on.
BROKEN = approval("broken", "USN-2-1") + "  colour: blue\n"
# `&` sends the file to the reference parser, which keeps every field's position by path.
UNKNOWN_GROUP = approval("ampersand", "USN-3-1", group="no-such-group").replace(
    "reason: test", "reason: R&D"
)
PATHS = ("policies/approvals/a.yaml", "inventory/shared.yaml")


def parse_twice(text: str) -> tuple[loading.ParsedFile, loading.ParsedFile]:
    cache = ParseCache()
    first, second = (cache.parse(SourceFile(path, text.encode())) for path in PATHS)
    return first, second


def test_the_same_content_at_another_path_reuses_the_objects_under_that_path() -> None:
    """A content seen before is not parsed again; the file is named by its own path."""
    first, second = parse_twice(SHARED)

    assert PATHS == (first.path, second.path)
    assert first.objects[0] is second.objects[0]
    assert (first.lines, ()) == (second.lines, second.problems)


def test_problems_name_the_path_they_were_found_at() -> None:
    """A content with a problem is parsed again at another path: each problem names its path."""
    first, second = parse_twice(BROKEN)

    assert [f"{PATHS[0]}:8:3"] == [str(p).split(": ", 1)[0] for p in first.problems]
    assert [f"{PATHS[1]}:8:3"] == [str(p).split(": ", 1)[0] for p in second.problems]


def test_a_reference_finding_is_located_at_the_path_the_content_was_moved_to() -> None:
    """Positions kept by the reference parse are not carried to another path."""
    first, second = parse_twice(UNKNOWN_GROUP)

    problems = loading.load_parsed([second], revision=None).errors

    assert first.raw is not None
    assert [(PATHS[1], "metadata.tenant")] == [(p.path, p.field) for p in problems]


def test_a_blob_id_is_the_one_git_gives_the_content() -> None:
    """`blob_id` matches `git hash-object`, so the walk's blob ids and the loader's bytes agree."""
    hashed = subprocess.run(
        ["git", "hash-object", "--stdin"], input=SHARED.encode(), capture_output=True, check=True
    )

    assert hashed.stdout.decode().strip() == blob_id(SHARED.encode())


def test_known_answers_only_for_a_content_parsed_before() -> None:
    """`known` gives a parsed blob at the asked path, and nothing for an unseen blob."""
    cache = ParseCache()
    cache.parse(SourceFile(PATHS[0], SHARED.encode()))

    found = cache.known(PATHS[1], blob_id(SHARED.encode()))

    assert cache.known(PATHS[0], blob_id(BROKEN.encode())) is None
    assert found is not None
    assert (PATHS[1], SHARED.encode()) == (found.path, found.source.data)


def walk_errors(git_history: History) -> dict[str, tuple[str, ...]]:
    walked = history.walk(git_history.repo, "main")
    return {
        e.commit.sha: e.errors
        for e in walked.events
        if e.type is AuditEventType.POLICY_INVALID and e.commit is not None
    }


def reference_errors(git_history: History, sha: str) -> tuple[str, ...]:
    """What `patchctl validate` says about a commit, read and parsed afresh (no cache)."""
    files = git_source.read_policy_commit(git_history.repo, sha)
    result = loading.load_policy(files, revision=None, parse=loading.parse_reference)
    return tuple(str(problem) for problem in result.errors)


@pytest.fixture
def shuffled_blobs(git_history: History) -> list[str]:
    """Commits moving the same blobs around: the same content at two paths and in two
    folders, a broken blob committed in one place, fixed, then committed in another."""
    shas = [git_history.seed()]
    steps: list[tuple[dict[str, str | None], str]] = [
        ({PATHS[0]: SHARED}, "one path"),
        ({PATHS[1]: SHARED}, "same bytes at a second path: a duplicate"),
        ({PATHS[0]: None}, "only the second path left"),
        ({PATHS[0]: BROKEN}, "a broken blob in one place"),
        ({PATHS[0]: None, PATHS[1]: BROKEN}, "the same broken blob in another"),
        ({PATHS[1]: UNKNOWN_GROUP}, "a reference error"),
        ({PATHS[1]: None, PATHS[0]: UNKNOWN_GROUP}, "the same reference error, moved"),
        ({PATHS[0]: SHARED}, "valid again"),
    ]
    for files, message in steps:
        for path, text in files.items():
            if text is None:
                git_history.remove(path)
            else:
                git_history.write(path, text)
        shas.append(git_history.commit(message))
    return shas


def test_the_walk_reports_what_a_fresh_parse_reports_at_every_commit(
    git_history: History, shuffled_blobs: list[str]
) -> None:
    """Blobs reused across paths: each commit's errors are those of reading it from scratch."""
    found = walk_errors(git_history)

    expected = {
        sha: errors for sha in shuffled_blobs if (errors := reference_errors(git_history, sha))
    }
    assert expected == found
    assert len(found) == 5


def test_the_same_bytes_at_another_path_change_no_object(
    git_history: History, shuffled_blobs: list[str]
) -> None:
    """Moving a blob between paths is no change: one grant, never removed; the state names
    the path the object is at in the end."""
    walked = history.walk(git_history.repo, "main")
    state = walked.state()

    shared = [
        (e.commit.sha if e.commit else None, str(e.type), e.path)
        for e in walked.events
        if e.key is not None and e.key.name == "shared"
    ]
    assert [(shuffled_blobs[1], "ApprovalGranted", PATHS[0])] == shared
    assert state is not None
    assert [PATHS[0]] == [o.path for k, o in state.origins.items() if k.name == "shared"]


def test_a_blob_the_cache_forgets_during_the_walk_is_not_read_again(
    git_history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk asks which blobs to read a batch ahead; one the parse cache knew then but forgot
    before the walk reached it is parsed from the bytes kept, without a `git cat-file` of its
    own, and the events are those of a walk from an empty cache."""
    git_history.seed()
    git_history.write(PATHS[0], approval("other", "USN-9-1"))
    git_history.commit("a new blob: the cache (one entry) forgets SHARED")
    git_history.write(PATHS[0], SHARED)
    git_history.commit("SHARED, known before the walk started")
    reference = [event.to_dict() for event in history.walk(git_history.repo, "main").events]
    cache = ParseCache(size=1)
    cache.parse(SourceFile(PATHS[0], SHARED.encode()))
    single_reads: list[str] = []

    def read_blobs(repo: object, blobs: list[str]) -> dict[str, bytes]:
        single_reads.extend(blobs)
        return git_source.read_blobs(git_history.repo, blobs)

    monkeypatch.setattr(parseahead, "read_blobs", read_blobs)
    walked = history.walk(git_history.repo, "main", parsed=cache, parse_ahead=False)

    assert [] == single_reads
    assert reference == [event.to_dict() for event in walked.events]
