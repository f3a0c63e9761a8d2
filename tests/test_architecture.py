"""The import direction: kinds/ and core/ stay pure (no I/O library, no clock, no logger), and
the layers of docs/architecture.md hold (import-linter)."""

from __future__ import annotations

import ast
import functools
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


# The audit trail's values and rules (issue 12.1): each has one home, and that home is pure.
AUDIT_HOMES = {
    "CommitFacts": "core/commits.py",
    "Person": "core/commits.py",
    "Signature": "core/commits.py",
    "parse_pull_request": "core/commits.py",
    "AuditEvent": "core/audit.py",
    "Rewrite": "core/audit.py",
    "judge_change": "core/access.py",
    "judge_events": "core/access.py",
    "filter_rejected": "core/access.py",
    "parse_policy_file": "sources/loading.py",
    "parse_reference": "sources/loading.py",
    "PolicyTree": "sources/policytree.py",
    "iter_log": "sources/git.py",
    "resolve_tip": "sources/git.py",
    "walk": "sources/history.py",
}
HISTORY_MAX_LINES = 400


@functools.cache
def top_level_definitions() -> dict[str, list[str]]:
    """Each function or class name defined at a module's top level -> the modules defining it."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                found.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    return found


def definitions(name: str) -> list[str]:
    """The modules of the package that define `name` at their top level."""
    return top_level_definitions().get(name, [])


@pytest.mark.parametrize(("name", "home"), sorted(AUDIT_HOMES.items()), ids=sorted(AUDIT_HOMES))
def test_each_part_of_the_audit_trail_has_one_home(name: str, home: str) -> None:
    """Commit facts, audit events, verdicts, the parser and the walk are each defined once."""
    assert [home] == definitions(name)


@pytest.mark.parametrize("name", ["commits.py", "audit.py", "access.py"])
def test_the_audit_trail_core_is_checked_for_purity(name: str) -> None:
    """The new core modules are among those the purity tests above read."""
    assert PACKAGE / "core" / name in pure_modules()


def test_the_history_walker_stays_small() -> None:
    """`sources/history.py` is the walk only: under 400 lines (issue 12.1)."""
    lines = (PACKAGE / "sources" / "history.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) < HISTORY_MAX_LINES


def test_the_layer_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml (layers, the pure core, the lone agent) are kept."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency (pip install -e '.[dev]')"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert 0 == result.returncode, result.stdout[-3000:]


# Tests mirror the package (issue 12.6): a module of core/ or store/ where behaviour lives has a
# test module of its own, `tests/<package>/test_<module>.py`, or `test_<package>_<module>.py`
# where the short name would collide with another directory's (pytest imports test files by
# their bare name). The exceptions, each with where its behaviour is tested instead:
MIRRORED_PACKAGES = ("core", "store")
UNMIRRORED = {
    "core/plan.py": "tests/planner/, one module per concern of plan()",
    "store/database.py": "tests/store/test_store_migrations.py, and every store fixture",
    "store/schema.py": "tables only; compared with the migrations in test_store_migrations.py",
    "store/history.py": "alerts in test_store_alert_batches.py and test_store_alert_filters.py",
}


def modules_without_mirror() -> list[str]:
    """The modules of core/ and store/ with no mirroring test module, as `package/module.py`."""
    tests = PACKAGE.parent / "tests"
    missing: list[str] = []
    for package in MIRRORED_PACKAGES:
        for path in sorted((PACKAGE / package).glob("*.py")):
            names = (f"test_{path.stem}.py", f"test_{package}_{path.stem}.py")
            mirrored = any((tests / package / name).is_file() for name in names)
            if path.stem != "__init__" and not mirrored:
                missing.append(f"{package}/{path.name}")
    return missing


def test_core_and_store_modules_have_mirroring_tests() -> None:
    """Each module of core/ and store/ has a test module named after it, or a listed reason."""
    assert sorted(UNMIRRORED) == modules_without_mirror()
