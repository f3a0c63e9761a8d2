"""Fixtures for the policy loader: real git repositories in tmp_path, nothing faked."""
