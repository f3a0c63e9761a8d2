"""`patchctl agent bundle DIR`: the reference agent as files an operator installs.

Writes `patchctl-agent.pyz` (a zipapp of the standard-library-only `patchctl_agent` package,
run by the system `python3` 3.9+), `patchctl-agent.service` (the systemd unit),
`agent.conf.example` and `README.md`. The agent's source is read as files: the controller never
imports it, and the agent imports nothing from the controller.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import shutil
import tempfile
import zipapp
from pathlib import Path

import click

from controller.cli.common import fail

AGENT_PACKAGE = "patchctl_agent"
ARCHIVE = "patchctl-agent.pyz"
TEMPLATES = ("patchctl-agent.service", "agent.conf.example", "README.md")
MAIN = '''"""patchctl-agent zipapp entry point."""
import sys

from patchctl_agent.cli import main

sys.exit(main())
'''


def agent_source() -> Path:
    """The folder of the `patchctl_agent` package (installed next to `controller`)."""
    spec = importlib.util.find_spec(AGENT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {AGENT_PACKAGE} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def write_bundle(directory: Path) -> list[Path]:
    """Write the bundle's four files into `directory` (created if needed); their paths.

    Raises OSError when a file cannot be written, FileNotFoundError when the agent's source is
    missing from this installation.
    """
    source = agent_source()
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / ARCHIVE
    with tempfile.TemporaryDirectory(prefix="patchctl-agent-") as staging:
        root = Path(staging)
        shutil.copytree(
            source, root / AGENT_PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        (root / "__main__.py").write_text(MAIN, encoding="utf-8")
        zipapp.create_archive(root, archive, interpreter="/usr/bin/env python3", compressed=True)
    written = [archive]
    templates = importlib.resources.files("controller") / "templates" / "agent"
    for name in TEMPLATES:
        target = directory / name
        target.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(target)
    return written


@click.group()
def agent() -> None:
    """The reference agent (patchctl-agent) for Debian/Ubuntu, RHEL-family and Windows hosts."""


@agent.command("bundle")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def bundle(directory: Path) -> None:
    """Write the agent into DIRECTORY: patchctl-agent.pyz (runs with the system python3 3.9+,
    standard library only), patchctl-agent.service, agent.conf.example and README.md."""
    try:
        written = write_bundle(directory)
    except (OSError, FileNotFoundError) as exc:
        fail(f"cannot write the agent bundle to {directory}: {exc}")
        return
    for path in written:
        click.echo(f"wrote {path}")


def register(main: click.Group) -> None:
    main.add_command(agent)
