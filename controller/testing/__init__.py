"""Helpers for testing patchctl and code that extends it, like `structlog.testing`.

Everything here is real except the clock: a git repository on disk (`PolicyRepo`), the real
`patchctl serve` process on a loopback port (`Serve`, `Replica`), commands run through the real
CLI (`run_cli`), the real JSON log pipeline (`json_logs`) and local HTTP servers that answer as
the forges' public REST APIs do (`FakeForge`). The planner builders (`fleets`) make policy,
devices, scans and jobs as plain values for `controller.core.plan.plan`.

Nothing here imports pytest; failures raise `AssertionError`. Fixtures live in the test
suite's `conftest.py` files and call these helpers. The submodules (`clocks`, `cli`, `repos`,
`serving`, `replicas`, `fleets`, `forges`, `logs`) hold the rest of the vocabulary.
"""

from __future__ import annotations

from controller.testing.cli import Result, run_cli
from controller.testing.clocks import SettableClock
from controller.testing.forges import FakeForge
from controller.testing.logs import json_logs, restore_logging
from controller.testing.repos import (
    ALICE,
    GROUPS,
    TENANTS,
    PolicyRepo,
    example_repository,
    policy_repository,
)
from controller.testing.serving import PATCHCTL, PROJECT_ROOT, Serve, free_port

__all__ = [
    "ALICE",
    "GROUPS",
    "PATCHCTL",
    "PROJECT_ROOT",
    "TENANTS",
    "FakeForge",
    "PolicyRepo",
    "Result",
    "Serve",
    "SettableClock",
    "example_repository",
    "free_port",
    "json_logs",
    "policy_repository",
    "restore_logging",
    "run_cli",
]
