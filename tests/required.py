"""What the suite needs from the machine: a missing tool or service skips a test on a
developer's machine, and fails it in CI (CI=true), where everything must be present."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it under CI=true, saying what is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run this test, but {reason}")
    pytest.skip(reason)
