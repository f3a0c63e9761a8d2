"""Fixtures for the policy loader: real git repositories in tmp_path, nothing faked."""

from gitrepos import example_repo, policy_repo

__all__ = ["example_repo", "policy_repo"]
