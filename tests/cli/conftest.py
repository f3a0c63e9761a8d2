"""Fixtures for the command-line tests: real repositories, a real `patchctl` process."""
