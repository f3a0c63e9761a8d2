"""`patchctl validate`: is the policy repository valid at this revision?"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.common import EXIT_NO, EXIT_OK, fail, json_option, print_json, repo_options
from controller.runtime.settings import DATABASE_FILE, default_database_url

if TYPE_CHECKING:
    from controller.core import review
    from controller.core.desired import DesiredState, Origin
    from controller.sources import repository
    from controller.sources.documents import Position, Problem, RawDocument


@click.command()
@repo_options
@click.option("--rev", default=None, help="Revision to read from git (sha, tag, HEAD~1, ...).")
@click.option(
    "--catalogue",
    "catalogue_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Patch catalogue snapshot (JSON, as GET /api/v1/catalogue serves it) to check "
    "Baseline rules against. Default: the catalogue of the SQLite database in --state-dir "
    "when there is one.",
)
@json_option
def validate(
    repo: str,
    branch: str | None,
    state_dir: Path,
    rev: str | None,
    catalogue_file: Path | None,
    as_json: bool,
) -> None:
    """Check every policy file: YAML syntax, schemas and cross-references.

    Without --rev or --branch a local repository is read as it is on disk, uncommitted edits
    included; with them the commit is read from git, no checkout needed. Errors are printed as
    `path:line:col: field.path: message`; warnings do not fail the check.

    With a patch catalogue (--catalogue, or the state directory's database), a Baseline rule
    that matches none of the catalogue's patches of its OS is a warning: it requires nothing,
    so devices would look compliant whatever they miss (e.g. `severities: [critical]` against
    Debian Packages records, which carry no severity).

    Exit codes: 0 valid, 1 invalid, 2 the repository, branch, revision or catalogue cannot be
    read, or it holds no policy object (the wrong --repo).
    """
    # The loader and the kinds; the store only when there is a catalogue to read (`_catalogue`).
    from controller.core.desired import count_by_kind  # noqa: PLC0415 - keep --help fast
    from controller.sources import repository  # noqa: PLC0415
    from controller.sources.loading import POLICY_DIRS  # noqa: PLC0415

    try:
        loaded = repository.load(repo, state_dir=state_dir, branch=branch, rev=rev)
    except repository.SourceError as exc:
        fail(str(exc))
        return
    if loaded.result.state is not None and not loaded.result.state and not loaded.result.problems:
        # run in the wrong folder, or with the wrong --repo: "valid, 0 objects" would pass a
        # check that checked nothing
        fail(
            f"no policy objects in {loaded.description}: policies are YAML files under "
            f"{' and '.join(f'{top}/' for top in POLICY_DIRS)}. Is --repo the policy "
            "repository? (`patchctl init DIR` scaffolds one.)"
        )
    catalogue = _catalogue(catalogue_file, state_dir)
    if catalogue is not None and loaded.result.state is not None:
        loaded = _with_rule_warnings(loaded, loaded.result.state, catalogue)
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
    from controller.core.desired import count_by_kind  # noqa: PLC0415 - keep --help fast

    result = loaded.result
    warnings = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if result.state is None:
        return f"invalid: {len(result.errors)} error(s){warnings} in {loaded.description}"
    counts = ", ".join(f"{kind} {n}" for kind, n in count_by_kind(result.state).items())
    return f"valid: {len(result.state)} objects ({counts}){warnings} in {loaded.description}"


def _catalogue(catalogue_file: Path | None, state_dir: Path) -> review.Catalogue | None:
    """The snapshot file, else the catalogue of the state directory's database, else None
    (a database is never created here)."""
    if catalogue_file is not None:
        from controller.runtime import plans  # noqa: PLC0415 - only with a catalogue file

        try:
            return plans.read_catalogue(catalogue_file)
        except plans.CatalogueFileError as exc:
            fail(str(exc))
            raise
    if not (state_dir / DATABASE_FILE).is_file():
        return None
    from controller.core import review  # noqa: PLC0415 - only with a store
    from controller.store import StoreError, catalogue, open_store  # noqa: PLC0415

    try:
        store = open_store(default_database_url(state_dir), migrate=False)
        try:
            with store.read() as conn:
                return review.catalogue_from_records(catalogue.load_catalogue(conn).values())
        finally:
            store.close()
    except StoreError as exc:
        fail(str(exc))
        raise


def _with_rule_warnings(
    loaded: repository.Loaded, state: DesiredState, catalogue: review.Catalogue
) -> repository.Loaded:
    """`loaded` with a located warning per Baseline rule that matches nothing."""
    from controller.core import review  # noqa: PLC0415 - only with a catalogue
    from controller.sources.documents import Problem  # noqa: PLC0415

    found = []
    documents: dict[str, list[RawDocument]] = {}  # each file read again once, with positions
    for baseline in state.baselines:
        origin = state.origins.get(baseline.key)
        for index, message in review.unmatched_rules(baseline, catalogue):
            found.append(
                Problem(
                    origin.path if origin else "",
                    _rule_position(loaded, origin, index, documents) if origin else None,
                    f"spec.rules[{index}]",
                    message,
                    warning=True,
                )
            )
    problems = (*loaded.result.problems, *found)
    return replace(loaded, result=replace(loaded.result, problems=problems))


def _rule_position(
    loaded: repository.Loaded,
    origin: Origin,
    index: int,
    documents: dict[str, list[RawDocument]],
) -> Position:
    """Where rule `index` of the Baseline whose document starts at `origin` is written: its
    file read again with positions, once (`documents`: by path; the fast loader keeps only
    each document's first line); the document's first line when the file is not at hand."""
    from controller.sources.documents import Position, parse_file  # noqa: PLC0415

    source = loaded.sources.get(origin.path)
    if source is not None and source.data is not None:
        if origin.path not in documents:
            documents[origin.path] = parse_file(origin.path, source.data)[0]
        for document in documents[origin.path]:
            if document.start.line == origin.line:
                return document.position_of(("spec", "rules", index))
    return Position(origin.line, 1)


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
