"""`patchctl init`: scaffold a working policy repository with a first commit."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import click

from controller.cli.common import fail

TEMPLATE = "templates/init"
FALLBACK_AUTHOR = ("patchctl init", "patchctl@localhost")  # name, email: when git has no identity

# Local state never belongs in the policy repository: it is per machine, large, and the SQLite
# database holds token hashes and device data. patchctl.toml stays committable on purpose: it
# holds no secrets (it names environment variables) and its [access] table is policy.
GITIGNORE = """\
# Local state of patchctl (written by `patchctl init`): never commit it.
# The state directory: SQLite database, clones, status (--state-dir, default .patchctl/).
/.patchctl/
# SQLite databases a --db URL may point at inside the repository, with their WAL files.
*.db
*.db-wal
*.db-shm
*.sqlite
*.sqlite3
# Files `patchctl report` writes by default (--out reports/); `--write-back` commits them
# to the reports branch instead.
/reports/
# Environment files with secrets (tokens, webhook secrets, SMTP passwords).
.env
.env.*
"""


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--branch", default="main", show_default=True, help="Name of the first branch.")
def init(directory: Path, branch: str) -> None:
    """Scaffold a policy repository in DIRECTORY (new or empty) and make its first commit.

    The result validates as it is: one partner tenant with a client, Windows and Linux groups,
    baselines, a whitelist, patch windows, a scan schedule, the JSON Schemas, a README and a
    .gitignore that keeps local state out of git (the .patchctl/ state directory, SQLite
    files, default report output, .env files; patchctl.toml stays committable: it holds no
    secrets).
    """
    import git  # noqa: PLC0415 - keep --help fast

    from controller.sources import schemas  # noqa: PLC0415

    if directory.exists() and any(directory.iterdir()):
        fail(f"{directory} is not empty; choose a new directory")
    template = resources.files("controller").joinpath(TEMPLATE)
    with resources.as_file(template) as source:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    (directory / "schemas").mkdir(exist_ok=True)
    for name, text in schemas.render_all().items():
        (directory / "schemas" / name).write_text(text, encoding="utf-8")
    with git.Repo.init(directory, initial_branch=branch) as repo:
        repo.git.add(all=True)
        reader = repo.config_reader()
        has_identity = reader.has_option("user", "name") and reader.has_option("user", "email")
        author = None if has_identity else git.Actor(*FALLBACK_AUTHOR)
        repo.index.commit(
            "Scaffold the policy repository (patchctl init)", author=author, committer=author
        )
    click.echo(f"initialised a policy repository in {directory} on branch {branch}")
    click.echo(f"next: cd {directory} && patchctl validate")


def register(main: click.Group) -> None:
    main.add_command(init)
