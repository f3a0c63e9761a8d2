"""Hostile policy files are refused with a clear error, quickly, from disk and from git alike."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from controller.sources import files, repository
from controller.sources.documents import MAX_FILE_BYTES, parse_file
from controller.sources.loading import LoadResult, load_policy
from controller.testing import PolicyRepo

ALIAS_BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""

HOSTILE = [
    (
        "python-object-tag",
        "apiVersion: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        "policies/x.yaml:1:13: YAML error: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "python-name-tag",
        "kind: !!python/name:os.system\n",
        "policies/x.yaml:1:7: YAML error: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/name:os.system'",
    ),
    (
        "alias-bomb",
        ALIAS_BOMB,
        "policies/x.yaml: a document expands to more than 100000 nodes (aliases multiplying content?)",
    ),
    (
        "deep-nesting",
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "policies/x.yaml: YAML nesting is too deep",
    ),
    (
        "non-utf8",
        b"kind: Baseline\nmetadata: {name: caf\xe9}\n",
        "policies/x.yaml:2:21: not UTF-8 text (byte 0xe9 at offset 35)",
    ),
    (
        "oversized",
        "# " + "x" * MAX_FILE_BYTES + "\n",
        f"policies/x.yaml: file is {MAX_FILE_BYTES + 3} bytes; the limit is {MAX_FILE_BYTES}",
    ),
]


def load_worktree(root: Path) -> LoadResult:
    return load_policy(files.read_tree(root), revision=None)


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_files_are_refused_from_the_working_tree(
    policy_repo: PolicyRepo, content: str | bytes, expected: str
) -> None:
    """Each hostile file yields exactly one error naming it, and the tree does not load."""
    policy_repo.write("policies/x.yaml", content)
    started = time.monotonic()
    result = load_worktree(policy_repo.path)
    assert [expected] == [str(p) for p in result.problems]
    assert result.state is None
    assert time.monotonic() - started < 30, "refusal must not hang"
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_files_are_refused_from_git(
    policy_repo: PolicyRepo, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    """The same refusals hold when the file is read from a commit."""
    policy_repo.write("policies/x.yaml", content)
    sha = policy_repo.commit("hostile")
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path / "state", rev=sha)
    assert [expected] == [str(p) for p in loaded.result.problems]


def test_small_aliases_are_fine() -> None:
    """Ordinary anchors and aliases, well under the budget, load normally."""
    text = b"defaults: &d {os: linux}\nspec:\n  os: *d\n  shell: sh\n"
    documents, problems = parse_file("p.yaml", text)
    assert [] == problems
    assert {"os": {"os": "linux"}, "shell": "sh"} == documents[0].data["spec"]


def test_merge_keys_are_refused_naming_both_lines() -> None:
    """A merge key `<<` (issue 17: fields a reviewer may not see) is an error naming both lines."""
    text = b"defaults: &d {os: linux}\nspec:\n  <<: *d\n  shell: sh\n"
    documents, problems = parse_file("p.yaml", text)
    assert [
        "p.yaml:3:3: spec.<<: merge keys (`<<`) are not allowed: the key at line 3 copies "
        "fields from line 1, which a reviewer may not see; write the fields out"
    ] == [str(p) for p in problems]
    assert [] == documents


def test_recursive_alias_is_refused() -> None:
    """A self-referencing alias cannot loop forever."""
    _, problems = parse_file("p.yaml", b"a: &a [*a]\n")
    assert 1 == len(problems)


def test_symlink_leaving_the_working_tree_is_refused(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A policy file that links outside the repository is refused, and its target is not read."""
    outside = tmp_path / "secret.yaml"
    outside.write_text("apiVersion: patchctl/v1\nkind: Tenant\nmetadata: {name: evil}\n")
    (policy_repo.path / "policies").mkdir()
    os.symlink(outside, policy_repo.path / "policies" / "evil.yaml")
    result = load_worktree(policy_repo.path)
    assert ["policies/evil.yaml: symlink points outside the repository"] == [
        str(p) for p in result.problems
    ]


def test_symlinked_directory_leaving_the_working_tree_is_refused(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A linked directory that leaves the repository is refused as well."""
    (tmp_path / "elsewhere").mkdir()
    (policy_repo.path / "policies").mkdir()
    os.symlink(tmp_path / "elsewhere", policy_repo.path / "policies" / "linked")
    result = load_worktree(policy_repo.path)
    assert ["policies/linked: symlink points outside the repository"] == [
        str(p) for p in result.problems
    ]


def test_symlink_leaving_the_repository_is_refused_in_git(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A committed symlink whose target leaves the repository is refused when reading the commit."""
    (policy_repo.path / "policies").mkdir()
    os.symlink("../../../etc/passwd", policy_repo.path / "policies" / "evil.yaml")
    sha = policy_repo.commit("link out")
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path / "state", rev=sha)
    assert ["policies/evil.yaml: symlink points outside the repository"] == [
        str(p) for p in loaded.result.problems
    ]


def test_symlink_inside_the_repository_is_followed_in_git(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A committed symlink to a file inside the repository loads that file under the link's name."""
    policy_repo.write(
        "shared/script.yaml",
        "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: s}\nspec: {os: linux, shell: sh, content: 'true'}\n",
    )
    (policy_repo.path / "policies").mkdir()
    os.symlink("../shared/script.yaml", policy_repo.path / "policies" / "script.yaml")
    sha = policy_repo.commit("link in")
    loaded = repository.load(str(policy_repo.path), state_dir=tmp_path / "state", rev=sha)
    assert loaded.result.state is not None
    assert ["s"] == [s.name for s in loaded.result.state.scripts]
