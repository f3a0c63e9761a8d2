"""A full audit build and the incremental walks of the same random history give the same trail."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from historyrepos import ALICE, BOB, GITHUB, MALLORY, History, approval

from controller.sources import git as git_source
from controller.sources import history

GROUPS = ("linux-web", "all-windows")
PATCHES = tuple(f"USN-{n}-1" for n in range(1, 30))
PEOPLE = (ALICE, BOB, MALLORY)
STEPS = 36


class RandomHistory:
    """Commits approvals added, edited, moved, broken, fixed and removed, some through merges."""

    def __init__(self, repo: History, seed: int) -> None:
        self.repo = repo
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible story, not a secret
        self.files: dict[str, list[str]] = {}  # path -> the approval names it holds
        self.broken: str | None = None
        self.made = 0

    def step(self) -> None:
        author = self.rng.choice(PEOPLE)
        if self.broken is not None and self.rng.random() < 0.6:
            self.write(self.broken, self.files.get(self.broken, []))
            self.broken = None
            self.land("fix", author)
            return
        roll = self.rng.random()
        if roll < 0.35 or not self.files:
            self.made += 1
            self.write(f"policies/approvals/ap-{self.made}.yaml", [f"ap-{self.made}"])
        elif roll < 0.55:
            path = self.rng.choice(sorted(self.files))
            self.write(path, self.files[path])
        elif roll < 0.65:
            path = self.rng.choice(sorted(self.files))
            self.repo.remove(path)
            del self.files[path]
        elif roll < 0.75:
            self.move()
        elif roll < 0.85:
            self.break_one()
        else:
            self.repo.write("README.md", f"notes {self.rng.random()}\n")
        self.land("change", author)

    def write(self, path: str, names: list[str]) -> None:
        self.files[path] = names
        documents = [
            approval(
                name,
                ", ".join(self.rng.sample(PATCHES, self.rng.randint(1, 3))),
                group=self.rng.choice(GROUPS),
            )
            for name in names
        ]
        self.repo.write(path, "---\n".join(documents))

    def move(self) -> None:
        """One file's approvals join another file's (the same objects, another path)."""
        if len(self.files) < 2:
            return
        source, target = self.rng.sample(sorted(self.files), 2)
        names = self.files.pop(source)
        self.repo.remove(source)
        self.write(target, self.files[target] + names)

    def break_one(self) -> None:
        path = self.rng.choice(sorted(self.files))
        if self.rng.random() < 0.5:
            self.repo.write(path, "kind: [")
        else:
            self.repo.write(path, approval(self.files[path][0], "USN-1-1", group="no-such-group"))
        self.broken = path

    def land(self, message: str, author: object) -> None:
        """A direct commit, or (one time in four) a pull request merged by the forge."""
        if self.rng.random() < 0.75:
            self.repo.commit(message, author=author)
            return
        self.repo.git("checkout", "-q", "-b", "pr")
        self.repo.commit(message, author=author)
        self.repo.git("checkout", "-q", "main")
        self.repo.merge("pr", "Merge pull request #1 from acme/pr", author=BOB, committer=GITHUB)
        self.repo.git("branch", "-q", "-D", "pr")


def trail(walk: history.HistoryWalk) -> list[dict[str, object]]:
    return [event.to_dict() for event in walk.events]


@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda seed: f"seed-{seed}")
def test_a_full_build_equals_the_incremental_walks(git_history: History, seed: int) -> None:
    """Walking commit by commit (with the cache, and restarted without it) gives the full trail."""
    git_history.seed()
    story = RandomHistory(git_history, seed)
    step = history.walk(git_history.repo, "main")
    incremental = trail(step)
    restarted = list(incremental)
    restart_tip = step.tip
    for number in range(STEPS):
        story.step()
        step = history.walk(git_history.repo, "main", since_sha=step.tip, cache=step.cache)
        incremental.extend(trail(step))
        if number % 6 == 5 and step.cache.valid_sha == step.tip:
            cold = history.walk(git_history.repo, "main", since_sha=restart_tip)
            restarted.extend(trail(cold))
            restart_tip = cold.tip
    cold = history.walk(git_history.repo, "main", since_sha=restart_tip)
    restarted.extend(trail(cold))

    full = history.walk(git_history.repo, "main")

    assert trail(full) == incremental
    assert trail(full) == restarted
    assert (full.tip, full.valid_revision) == (step.tip, step.valid_revision)
    assert full.state() == step.state()
    assert len(full.events) > STEPS // 2
    assert any(str(event.type) == "PolicyInvalid" for event in full.events)


@pytest.mark.parametrize("seed", [4, 5], ids=lambda seed: f"seed-{seed}")
def test_a_build_parsing_ahead_in_a_worker_equals_one_parsing_in_process(
    git_history: History, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The YAML read by a worker process (`sources.parseahead`) gives the very same trail.
    The walk waits at its first commit, so that the worker has started and answered: the
    trail is built from its answers, not from the walk's own parsing."""
    git_history.seed()
    story = RandomHistory(git_history, seed)
    for _ in range(STEPS):
        story.step()
    apply = history._Walker.apply
    waited: list[bool] = []

    def slow_start(walker: Any, *args: Any) -> None:
        if not waited:
            waited.append(True)
            time.sleep(1.0)
        apply(walker, *args)

    monkeypatch.setattr(history._Walker, "apply", slow_start)
    ahead = history.walk(git_history.repo, "main", parse_ahead=True)
    monkeypatch.undo()
    in_process = history.walk(git_history.repo, "main", parse_ahead=False)

    assert ahead.parsed_ahead > 0
    assert in_process.parsed_ahead == 0
    assert trail(ahead) == trail(in_process)
    assert ahead.state() == in_process.state()
    assert any(str(event.type) == "PolicyInvalid" for event in ahead.events)


@pytest.mark.parametrize("seed", [6, 7], ids=lambda seed: f"seed-{seed}")
def test_a_build_in_many_small_batches_equals_one_in_a_single_batch(
    git_history: History, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is read in batches growing from `FIRST_BATCH` (merged heads' authors looked up
    a batch behind, in a thread): batches of 1, 2, 4... commits give the single batch's trail,
    merge commits with their merged head's author included."""
    git_history.seed()
    story = RandomHistory(git_history, seed)
    for _ in range(STEPS):
        story.step()
    whole = history.walk(git_history.repo, "main", parse_ahead=False)
    sizes: list[int] = []
    iter_log = git_source.iter_log

    def counted(*args: Any, **kwargs: Any) -> Iterator[git_source.LogBatch]:
        for batch in iter_log(*args, **kwargs):
            sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(git_source, "FIRST_BATCH", 1)
    monkeypatch.setattr(git_source, "iter_log", counted)
    batched = history.walk(git_history.repo, "main", parse_ahead=False)

    assert sizes[:4] == [1, 2, 4, 8]
    assert sum(sizes) == batched.commits_read == whole.commits_read
    assert trail(batched) == trail(whole)
    merges = [e.commit for e in whole.events if e.commit is not None and e.commit.is_merge]
    assert merges
    assert all(commit.merged_head_author is not None for commit in merges)
