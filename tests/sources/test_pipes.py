"""Pipes to and from git read and written in large pieces (`sources.pipes`), with real git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git
import pytest

from controller.sources import git as git_source
from controller.sources import pipes, signatures
from controller.testing import PolicyRepo

PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")


@pytest.mark.skipif(not PIPE_MAX.exists(), reason="F_SETPIPE_SZ is Linux's")
def test_a_pipe_is_widened_and_says_what_it_holds() -> None:
    """A widened pipe holds at least `PIPE_BYTES` or the system's limit (root may go past the
    limit); what it says it holds is what it takes, empty, without blocking."""
    limit = int(PIPE_MAX.read_text())
    read_end, write_end = os.pipe()
    try:
        held = pipes.widen(write_end)
        os.set_blocking(write_end, False)
        written = os.write(write_end, b"x" * (held + 1))
    finally:
        os.close(read_end)
        os.close(write_end)

    assert held >= min(pipes.PIPE_BYTES, limit)
    assert written == held


def test_what_is_not_a_pipe_holds_nothing_known(tmp_path: Path) -> None:
    with (tmp_path / "file").open("wb") as file:
        assert pipes.widen(file.fileno()) == 0


def many_blobs(policy_repo: PolicyRepo, count: int) -> list[str]:
    for number in range(count):
        policy_repo.write(f"policies/scripts/s{number}.yaml", f"number: {number}\n" * 150)
    policy_repo.commit("many files")
    listing = policy_repo.repo.git.ls_tree("-r", "HEAD", "--", "policies/scripts")
    return [line.split()[2] for line in listing.splitlines()]


@pytest.mark.parametrize("widened", [True, False], ids=["whole-input-then-read", "communicate"])
def test_git_with_input_answers_git_s_output_either_way(
    policy_repo: PolicyRepo, monkeypatch: pytest.MonkeyPatch, *, widened: bool
) -> None:
    """Input that fits the widened pipe (here more than a default pipe holds) is written whole
    and the output read in large pieces, without `communicate`; input that does not (here: a
    pipe that cannot be widened) goes through `communicate`. Same bytes both ways, as git
    prints them."""
    blobs = many_blobs(policy_repo, 300)  # ~400 KiB of output: several pipes' worth
    wanted = blobs * 6  # ~74 KB of input: more than a default pipe holds
    data = ("\n".join(wanted) + "\n").encode()
    communicate = subprocess.Popen.communicate
    used: list[bool] = []

    def spy(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> object:
        used.append(True)
        return communicate(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "communicate", spy)
    if not widened:
        monkeypatch.setattr(pipes, "widen", lambda _descriptor, _size=0: 0)

    output = signatures.git_with_input(policy_repo.repo, ["cat-file", "--batch"], data)

    contents = {blob: policy_repo.repo.odb.stream(bytes.fromhex(blob)).read() for blob in blobs}
    expected = b"".join(
        b"%s blob %d\n%s\n" % (blob.encode(), len(contents[blob]), contents[blob])
        for blob in wanted
    )
    assert len(data) > pipes.DEFAULT_PIPE_BYTES
    assert output == expected
    assert used == ([] if widened else [True])


@pytest.mark.parametrize("size", [100, 3_000_000], ids=["small-input", "input-over-the-pipe"])
def test_git_failing_early_is_git_s_error_whatever_the_input(
    policy_repo: PolicyRepo, size: int
) -> None:
    """git that exits before reading its input (a bad option) is a GitCommandError with git's
    own message, not a broken pipe, whether the input was written whole or communicated."""
    with pytest.raises(git.GitCommandError, match="no-such-option"):
        signatures.git_with_input(
            policy_repo.repo, ["cat-file", "--batch", "--no-such-option"], b"x" * size
        )


def test_git_runs_from_a_directory_that_is_gone(
    policy_repo: PolicyRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's working directory may be gone (a daemon started in a removed directory):
    git runs in the repository, not there."""
    blobs = many_blobs(policy_repo, 2)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()

    output = signatures.git_with_input(
        policy_repo.repo, ["cat-file", "--batch-check"], (blobs[0] + "\n").encode()
    )
    fields = list(git_source.stream_git(policy_repo.repo, ["log", "-z", "--format=%H"], env={}))

    assert output.startswith(blobs[0].encode())
    assert fields


def test_git_with_input_raises_git_s_error(policy_repo: PolicyRepo) -> None:
    """A failing git is a GitCommandError carrying git's own message, however the input went."""
    with pytest.raises(git.GitCommandError, match="no-such-object"):
        signatures.git_with_input(policy_repo.repo, ["cat-file", "-p", "no-such-object"], b"x\n")
