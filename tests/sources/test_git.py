"""The git source: branches, revisions and URLs read without a checkout; clear errors otherwise."""

from __future__ import annotations

import threading
from pathlib import Path

import git
import pytest

from controller.core.revisions import format_revision
from controller.sources import git as git_source
from controller.sources import repository, signatures
from controller.sources.git import SourceError
from controller.testing import PolicyRepo

SCRIPT = "apiVersion: patchctl/v1\nkind: Script\nmetadata: {{name: {name}}}\nspec: {{os: linux, shell: sh, content: 'true'}}\n"


def script_names(loaded: repository.Loaded) -> list[str]:
    assert loaded.result.state is not None, [str(p) for p in loaded.result.problems]
    return [s.name for s in loaded.result.state.scripts]


def test_a_commit_that_is_not_checked_out_loads(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """An older revision is read from git while the working tree holds a newer one."""
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="old"))
    old = policy_repo.commit("old")
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="new"))
    policy_repo.commit("new")
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path, rev=old)
    assert ["old"] == script_names(loaded)
    assert format_revision("main", old) == loaded.revision
    assert loaded.result.state is not None
    assert loaded.revision == loaded.result.state.revision


def test_a_branch_is_read_without_switching_to_it(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """`--branch` reads that branch's tip; the checkout stays where it was."""
    policy_repo.repo.git.checkout("-b", "feature")
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="feature"))
    sha = policy_repo.commit("on feature")
    policy_repo.repo.git.checkout("main")
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path, branch="feature")
    assert ["feature"] == script_names(loaded)
    assert f"feature@sha1:{sha}" == loaded.revision
    assert "main" == policy_repo.repo.active_branch.name


def test_a_url_is_cloned_then_fetched(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """A git URL is cloned into the state directory and fetched again on the next load."""
    url = f"file://{policy_repo.path}"
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="first"))
    policy_repo.commit("first")
    assert ["first"] == script_names(
        repository.load(url, state_dir=tmp_path / "state", branch="main")
    )
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="second"))
    sha = policy_repo.commit("second")
    loaded = repository.load(url, state_dir=tmp_path / "state", branch="main")
    assert ["second"] == script_names(loaded)
    assert f"main@sha1:{sha}" == loaded.revision


def test_working_tree_reports_uncommitted_edits(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """A clean working tree carries its revision; a dirty one says it has uncommitted changes."""
    clean = repository.load(str(policy_repo.path), state_dir=tmp_path)
    assert clean.revision == format_revision("main", policy_repo.repo.head.commit.hexsha)
    policy_repo.write("policies/scripts/s.yaml", SCRIPT.format(name="draft"))
    dirty = repository.load(str(policy_repo.path), state_dir=tmp_path)
    assert (None, ["draft"]) == (dirty.revision, script_names(dirty))


@pytest.mark.parametrize(
    ("spec", "branch", "rev", "message"),
    [
        (
            "{tmp}/missing",
            None,
            None,
            "repository '{tmp}/missing' does not exist or is not a directory",
        ),
        ("{tmp}/missing", "main", None, "repository '{tmp}/missing' does not exist"),
        ("{tmp}/plain", "main", None, "'{tmp}/plain' is not a git repository"),
        ("{repo}", "nope", None, "branch 'nope' does not exist in {repo}"),
        ("{repo}", None, "deadbeef", "revision 'deadbeef' does not exist"),
        ("file://{tmp}/missing", "main", None, "cannot fetch file://{tmp}/missing"),
    ],
    ids=[
        "missing-dir",
        "missing-repo",
        "not-a-repo",
        "missing-branch",
        "missing-revision",
        "unreachable-url",
    ],
)
def test_unreadable_sources_raise_clear_errors(
    policy_repo: PolicyRepo,
    tmp_path: Path,
    spec: str,
    branch: str | None,
    rev: str | None,
    message: str,
) -> None:
    """A missing repository, branch or revision is a SourceError saying which."""
    (tmp_path / "plain").mkdir()
    names = {"tmp": str(tmp_path), "repo": str(policy_repo.path)}
    with pytest.raises(SourceError) as raised:
        repository.load(spec.format(**names), state_dir=tmp_path / "state", branch=branch, rev=rev)
    assert str(raised.value).startswith(message.format(**names))


def test_credentials_in_urls_are_not_echoed(tmp_path: Path) -> None:
    """A URL's user and password never reach the error message."""
    with pytest.raises(SourceError) as raised:
        repository.load(
            "https://bob:hunter2@127.0.0.1:9/none.git", state_dir=tmp_path, branch="main"
        )
    assert "hunter2" not in str(raised.value)


def test_a_stream_stopped_early_stops_git_and_its_reader(policy_repo: PolicyRepo) -> None:
    """Closing `stream_git` after a few fields ends git and the read-ahead thread, no error."""
    for number in range(30):
        policy_repo.write(f"policies/scripts/s{number}.yaml", SCRIPT.format(name=f"s{number}"))
        policy_repo.commit(f"script {number}")
    before = threading.active_count()
    fields = git_source.stream_git(policy_repo.repo, ["log", "-z", "--raw", "--format=%H"], env={})

    first = next(fields)
    fields.close()

    assert 40 == len(first.strip())
    assert before == threading.active_count()


def test_a_failing_git_is_an_error_after_its_output(policy_repo: PolicyRepo) -> None:
    """git's exit status still decides: a bad revision raises GitCommandError."""
    fields = git_source.stream_git(policy_repo.repo, ["log", "-z", "no-such-branch"], env={})

    with pytest.raises(git.GitCommandError, match="no-such-branch"):
        list(fields)


def _record(sha: str, author: bytes, message: bytes) -> list[bytes]:
    """One `git log` record as `_parse_log` reads it: the header fields, then one raw change."""
    return [
        sha.encode(),
        b"",
        author,
        b"alice@acme.example",
        b"2026-01-01T00:00:00+00:00",
        b"Alice Admin",
        b"alice@acme.example",
        b"2026-01-01T00:00:00+00:00",
        b"N",
        b"",
        b"",
        b"",
        b"Reviewed-by: Bob <bob@acme.example>",
        message,
        b"\n:000000 100644 " + b"0" * 40 + b" " + b"1" * 40 + b" A",
        b"policies/a.yaml",
    ]


def test_log_records_decode_field_by_field_and_share_people() -> None:
    """A header is decoded whole, with the answer of decoding each field alone (a broken UTF-8
    sequence at a field's end stays in that field); commits by the same person share one
    `Person`, and the same trailers one tuple."""
    broken = b"Al\xc3"  # a truncated two-byte sequence, right before the field separator
    fields = [*_record("a" * 40, broken, b"first\xff"), *_record("b" * 40, broken, b"second")]

    first, second = (facts for facts, _ in git_source._parse_log(fields))

    assert first.author.name == broken.decode("utf-8", "replace") == "Al\ufffd"
    assert first.message == "first\ufffd"
    assert first.author is second.author
    assert first.trailers is second.trailers
    assert [("Reviewed-by", "Bob <bob@acme.example>")] == [(t.key, t.value) for t in first.trailers]


def test_blobs_read_ahead_are_handed_over_before_their_batch(policy_repo: PolicyRepo) -> None:
    """`on_read` gets each batch's blobs in the reading thread, before the caller gets the batch
    (the YAML worker starts on them a batch early)."""
    for number in range(3):
        policy_repo.write(f"policies/scripts/s{number}.yaml", SCRIPT.format(name=f"s{number}"))
        policy_repo.commit(f"script {number}")
    told: list[tuple[str, int]] = []

    def on_read(batch: git_source.LogBatch, blobs: dict[str, bytes]) -> None:
        told.append((threading.current_thread().name, len(blobs)))

    with signatures.Verifier() as verifier:
        log = git_source.iter_log(policy_repo.repo, ["main"], verifier=verifier, batch_size=1)
        told_before: list[bool] = []
        counts: list[int] = []
        for index, (_, blobs) in enumerate(
            git_source.with_blobs_ahead(policy_repo.repo, log, lambda _p, _b: True, on_read)
        ):
            told_before.append(len(told) > index)
            counts.append(len(blobs))

    assert (True, 4) == (all(told_before), len(told_before))
    assert all(name != threading.main_thread().name for name, _ in told)
    assert counts == [count for _, count in told]
