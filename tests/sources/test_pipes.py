"""Pipes to and from git read and written in large pieces (`sources.pipes`), with real git."""

from __future__ import annotations

import os
from pathlib import Path

import git
import pytest

from controller.sources import pipes, signatures
from controller.testing import PolicyRepo

PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")


@pytest.mark.skipif(not PIPE_MAX.exists(), reason="F_SETPIPE_SZ is Linux's")
def test_a_pipe_is_widened_up_to_the_systems_limit() -> None:
    """A pipe holds `PIPE_BYTES` (or the system's limit, if lower); the answer says so."""
    limit = int(PIPE_MAX.read_text())
    read_end, write_end = os.pipe()
    try:
        before = pipes.widen(read_end, pipes.DEFAULT_PIPE_BYTES)
        held = pipes.widen(read_end)
        # what the pipe takes without blocking is what it said it holds
        os.set_blocking(write_end, False)
        written = os.write(write_end, b"x" * (held + 1))
    finally:
        os.close(read_end)
        os.close(write_end)

    assert before == pipes.DEFAULT_PIPE_BYTES
    assert held == min(pipes.PIPE_BYTES, limit)
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
    """Input that fits the pipe is written whole and the output read in large pieces; input
    that does not (here: a pipe that cannot be widened) goes through `communicate`. Same
    bytes both ways, and as git prints them."""
    blobs = many_blobs(policy_repo, 300)  # ~400 KiB of output: several pipes' worth
    if not widened:
        monkeypatch.setattr(pipes, "widen", lambda _descriptor, _size=0: 0)
    data = ("\n".join(blobs) + "\n").encode()

    output = signatures.git_with_input(policy_repo.repo, ["cat-file", "--batch"], data)

    contents = [policy_repo.repo.odb.stream(bytes.fromhex(blob)).read() for blob in blobs]
    expected = b"".join(
        b"%s blob %d\n%s\n" % (blob.encode(), len(content), content)
        for blob, content in zip(blobs, contents, strict=True)
    )
    assert len(output) > 4 * pipes.DEFAULT_PIPE_BYTES
    assert output == expected


def test_git_with_input_raises_git_s_error(policy_repo: PolicyRepo) -> None:
    """A failing git is a GitCommandError carrying git's own message, however the input went."""
    with pytest.raises(git.GitCommandError, match="no-such-object"):
        signatures.git_with_input(policy_repo.repo, ["cat-file", "-p", "no-such-object"], b"x\n")
