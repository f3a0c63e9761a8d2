"""The import direction: kinds/ and core/ stay pure (no I/O library, no clock, no logger), and
the layers of docs/architecture.md hold (import-linter)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "controller"
PURE_PACKAGES = ("kinds", "core")
FORBIDDEN_MODULES = {
    "yaml",
    "sqlalchemy",
    "alembic",
    "git",
    "httpx",
    "requests",
    "fastapi",
    "starlette",
    "uvicorn",
    "structlog",
    "logging",
    "watchfiles",
    "psycopg",
    "socket",
    "subprocess",
    "urllib",
    "http",
    "smtplib",
    "asyncio",
    "os",
    "shutil",
    "pathlib",
    "io",
    "time",
    "random",
    "defusedxml",
}
ALLOWED_INTERNAL = ("controller.kinds", "controller.core")
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic"}


def pure_modules() -> list[Path]:
    return sorted(p for name in PURE_PACKAGES for p in (PACKAGE / name).rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_packages_import_no_io(path: Path) -> None:
    """No module of kinds/ or core/ imports an I/O library or an outer controller package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    offending = [
        name
        for name in imported_modules(tree)
        if name.split(".")[0] in FORBIDDEN_MODULES
        or (name.startswith("controller") and not name.startswith(ALLOWED_INTERNAL))
    ]
    assert [] == offending


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_packages_never_read_the_clock(path: Path) -> None:
    """Time is a parameter: no datetime.now(), date.today() or time.time() in kinds/ or core/."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [
        ast.unparse(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert [] == calls


def test_the_layer_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml (layers, the pure core, the lone agent) are kept."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency (pip install -e '.[dev]')"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert 0 == result.returncode, result.stdout[-3000:]
