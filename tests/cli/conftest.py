"""Fixtures for the command-line tests: real repositories, a real `patchctl` process."""

from gitrepos import example_repo, policy_repo

__all__ = ["example_repo", "policy_repo"]
