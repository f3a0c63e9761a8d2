"""`patchctl validate`: is the policy repository valid at this revision?"""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.common import EXIT_NO, EXIT_OK, fail, json_option, print_json, repo_options
from controller.core.desired import count_by_kind
from controller.sources import repository
from controller.sources.documents import Problem


@click.command()
@repo_options
@click.option("--rev", default=None, help="Revision to read from git (sha, tag, HEAD~1, ...).")
@json_option
def validate(
    repo: str, branch: str | None, state_dir: Path, rev: str | None, as_json: bool
) -> None:
    """Check every policy file: YAML syntax, schemas and cross-references.

    Without --rev or --branch a local repository is read as it is on disk, uncommitted edits
    included; with them the commit is read from git, no checkout needed. Errors are printed as
    `path:line:col: field.path: message`; warnings do not fail the check.

    Exit codes: 0 valid, 1 invalid, 2 the repository, branch or revision cannot be read.
    """
    try:
        loaded = repository.load(repo, state_dir=state_dir, branch=branch, rev=rev)
    except repository.SourceError as exc:
        fail(str(exc))
        return
    result = loaded.result
    if as_json:
        print_json(
            {
                "valid": result.ok,
                "revision": loaded.revision,
                "source": loaded.description,
                "objects": count_by_kind(result.state) if result.state else {},
                "errors": [_problem_json(p) for p in result.errors],
                "warnings": [_problem_json(p) for p in result.warnings],
            }
        )
    else:
        for problem in result.problems:
            click.echo(str(problem), err=False)
        click.echo(_summary(loaded), err=not result.ok)
    raise SystemExit(EXIT_OK if result.ok else EXIT_NO)


def _summary(loaded: repository.Loaded) -> str:
    result = loaded.result
    warnings = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if result.state is None:
        return f"invalid: {len(result.errors)} error(s){warnings} in {loaded.description}"
    counts = ", ".join(f"{kind} {n}" for kind, n in count_by_kind(result.state).items())
    return f"valid: {len(result.state)} objects ({counts}){warnings} in {loaded.description}"


def _problem_json(problem: Problem) -> dict[str, object]:
    return {
        "path": problem.path,
        "line": problem.position.line if problem.position else None,
        "column": problem.position.column if problem.position else None,
        "field": problem.field,
        "message": problem.message,
    }


def register(main: click.Group) -> None:
    main.add_command(validate)
