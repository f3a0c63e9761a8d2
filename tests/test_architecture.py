"""The import direction: kinds/, core/, errors.py and vocabularies.py stay pure (no I/O library,
no clock, no logger), and the layers of docs/architecture.md hold (import-linter)."""

from __future__ import annotations

import ast
import functools
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "controller"
PURE_PACKAGES = ("kinds", "core")
# The error tree and the shared vocabularies (name patterns, StrEnums), importable by every layer.
PURE_MODULES = ("errors.py", "vocabularies.py")
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
ALLOWED_INTERNAL = (
    "controller.kinds",
    "controller.core",
    "controller.errors",
    "controller.vocabularies",
)
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic"}


def pure_modules() -> list[Path]:
    packages = [p for name in PURE_PACKAGES for p in (PACKAGE / name).rglob("*.py")]
    return sorted([*packages, *(PACKAGE / name for name in PURE_MODULES)])


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


# SQL only in store/ (issue 12.2): the modules that still build statements, until the branches
# that move them land (the lead removes each entry then; the test below fails on a stale one).
SQL_ALLOWED: frozenset[str] = frozenset()
SQL_CALLS = {"execute", "exec_driver_sql", "executemany"}
# What of SQLAlchemy builds no statement: its exceptions and the URL parser.
SQLALCHEMY_ALLOWED = {
    "sqlalchemy": {"exc"},
    "sqlalchemy.exc": None,
    "sqlalchemy.engine": {"make_url"},
}


def sql_uses(tree: ast.AST) -> list[str]:
    """What in a module builds or runs SQL: a statement-building SQLAlchemy import, the store's
    tables (`controller.store.schema`), a `.execute(` call (GitPython's `repo.git.execute`, which
    runs git, excepted)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("sqlalchemy") or a.name == "controller.store.schema"
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {alias.name for alias in node.names}
            if node.module.split(".")[0] == "sqlalchemy":
                allowed = SQLALCHEMY_ALLOWED.get(node.module, set())
                if allowed is not None and not names <= allowed:
                    found.append(f"from {node.module} import {', '.join(sorted(names))}")
            elif node.module == "controller.store.schema" or (
                node.module == "controller.store" and "schema" in names
            ):
                found.append(f"from {node.module} import schema")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
            and not ast.unparse(node.func.value).endswith(".git")
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}(")
    return found


def outside_store() -> list[Path]:
    """The package's modules outside store/, except `controller.testing`, whose helpers read
    the store's tables to check what a test did."""
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if not {"store", "testing"} & set(p.relative_to(PACKAGE).parts)
    )


@pytest.mark.parametrize("path", outside_store(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_sql_lives_only_in_the_store(path: Path) -> None:
    """No module outside `controller/store/` builds or runs SQL; it calls a store function."""
    name = str(path.relative_to(PACKAGE))
    uses = sql_uses(ast.parse(path.read_text(encoding="utf-8")))
    if name in SQL_ALLOWED:
        assert uses, f"{name} has no SQL left: take it off SQL_ALLOWED"
    else:
        assert [] == uses


# --- one vocabulary (issue 12 item 3) ----------------------------------------------------------

# `dict[str, Any]` in core/ as of the vocabulary work: values get types, the count never grows.
CORE_ANY_DICTS_CEILING = 8


def string_enums() -> dict[str, frozenset[str]]:
    """Every StrEnum (or str-mixin Enum) class in the package, `module:Class` → its values."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
            if "StrEnum" in bases or {"str", "Enum"} <= bases:
                values = frozenset(
                    statement.value.value
                    for statement in node.body
                    if isinstance(statement, ast.Assign)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                )
                found[f"{path.relative_to(PACKAGE.parent)}:{node.name}"] = values
    return found


def test_no_two_enums_spell_the_same_vocabulary() -> None:
    """No StrEnum repeats another's whole set of values, and no two share a class name."""
    enums = string_enums()
    by_values: dict[frozenset[str], list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for where, values in enums.items():
        by_values.setdefault(values, []).append(where)
        by_name.setdefault(where.rsplit(":", 1)[1], []).append(where)
    repeated = [sorted(places) for places in by_values.values() if len(places) > 1]
    renamed = [sorted(places) for places in by_name.values() if len(places) > 1]
    assert ([], []) == (repeated, renamed)


def test_the_enum_walk_sees_the_vocabularies() -> None:
    """The walk above finds the enums it guards (a broken walk would pass vacuously)."""
    names = {where.rsplit(":", 1)[1] for where in string_enums()}
    expected = {"EventType", "AuditEventType", "ConditionType", "Reason", "ReconcileResult"}
    assert expected <= names


def test_core_untyped_dicts_do_not_grow() -> None:
    """`dict[str, Any]` in core/ stays at or below its recorded ceiling."""
    count = sum(
        path.read_text(encoding="utf-8").count("dict[str, Any]")
        for path in (PACKAGE / "core").rglob("*.py")
    )
    assert count <= CORE_ANY_DICTS_CEILING


def agent_api_vocabularies() -> list[tuple[str, set[str], set[str]]]:
    """(field, the wire values the agent API's model accepts, the values of its enum)."""
    from controller.core import jobs, observed  # noqa: PLC0415 - this file reads sources mostly
    from controller.server import models  # noqa: PLC0415
    from controller.store import reports  # noqa: PLC0415

    def accepted(model: type[Any], name: str) -> set[str]:
        return set(typing.get_args(model.model_fields[name].annotation))

    return [
        ("state", accepted(models.JobEventRequest, "state"), {s.value for s in jobs.AGENT_STATES}),
        ("kind", accepted(models.AgentJob, "kind"), {k.value for k in observed.JobKind}),
        # an agent may say `not-applicable`; the planner reads it as skipped (runtime/observe.py)
        (
            "result",
            accepted(models.PatchResult, "result"),
            {r.value for r in observed.PatchResult} | {"not-applicable"},
        ),
        ("scan", accepted(models.ReportResponse, "scan"), {o.value for o in reports.ScanOutcome}),
    ]


def test_the_agent_api_spells_the_core_vocabularies() -> None:
    """Each closed set the agent API writes as a `Literal` is exactly its enum's values."""
    mismatched = [name for name, wire, values in agent_api_vocabularies() if wire != values]
    assert [] == mismatched


# Tests mirror the package (issue 12.6): a module of core/ or store/ where behaviour lives has a
# test module of its own, `tests/<package>/test_<module>.py`, or `test_<package>_<module>.py`
# where the short name would collide with another directory's (pytest imports test files by
# their bare name). The exceptions, each with where its behaviour is tested instead:
MIRRORED_PACKAGES = ("core", "store")
UNMIRRORED = {
    "core/plan.py": "tests/planner/, one module per concern of plan()",
    "store/schema.py": "tables only; compared with the migrations in test_store_migrations.py",
    "store/alerts.py": "test_store_alert_batches.py and test_store_alert_filters.py",
    "store/audit.py": "tests/history/ (the trail as written and read back) and the audit API tests in tests/server/",
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
