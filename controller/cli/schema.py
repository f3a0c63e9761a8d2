"""`patchctl schema export`: the JSON Schema of every policy kind."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.common import EXIT_NO, fail


@click.group()
def schema() -> None:
    """JSON Schemas of the policy kinds, for editors and CI."""


@schema.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when DIRECTORY differs from what the models generate.",
)
def export(directory: Path, check: bool) -> None:
    """Write one JSON Schema per kind (and all.schema.json for mixed files) into DIRECTORY.

    Point editors at them with a first line such as
    `# yaml-language-server: $schema=../../schemas/baseline.schema.json`.
    """
    from controller.sources import schemas  # noqa: PLC0415 - keep --help fast

    rendered = schemas.render_all()
    if check:
        drifted = sorted(
            name
            for name, text in rendered.items()
            if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
        )
        extra = (
            sorted(p.name for p in directory.glob("*.schema.json") if p.name not in rendered)
            if directory.is_dir()
            else []
        )
        for name in [*drifted, *extra]:
            click.echo(f"{directory / name}: out of date; run `patchctl schema export {directory}`")
        if drifted or extra:
            raise SystemExit(EXIT_NO)
        click.echo(f"{len(rendered)} schemas up to date in {directory}")
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (directory / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write schemas: {exc}")
    click.echo(f"wrote {len(rendered)} schemas to {directory}")


def register(main: click.Group) -> None:
    main.add_command(schema)
