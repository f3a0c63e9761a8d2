"""Policy files from a working directory (what an editor or a pre-commit hook sees)."""

from __future__ import annotations

import os
from pathlib import Path

from controller.sources.documents import MAX_FILE_BYTES
from controller.sources.loading import POLICY_DIRS, YAML_SUFFIXES, SourceFile


def read_tree(root: Path) -> list[SourceFile]:
    """Every policy YAML file under `root`, refusing links that leave it and oversized files."""
    root = root.resolve()
    found: list[SourceFile] = []
    for top in POLICY_DIRS:
        base = root / top
        if base.is_symlink() and not _inside(base.resolve(), root):
            found.append(SourceFile(top, None, "symlink points outside the repository"))
            continue
        if not base.is_dir():
            continue
        for directory, subdirs, names in os.walk(base):
            here = Path(directory)
            for subdir in sorted(subdirs):
                link = here / subdir
                if link.is_symlink() and not _inside(link.resolve(), root):
                    found.append(
                        SourceFile(
                            _relative(link, root), None, "symlink points outside the repository"
                        )
                    )
            found.extend(
                _read_file(here / name, root)
                for name in sorted(names)
                if name.endswith(YAML_SUFFIXES)
            )
    return found


def _read_file(path: Path, root: Path) -> SourceFile:
    relative = _relative(path, root)
    target = path.resolve()
    if not _inside(target, root):
        return SourceFile(relative, None, "symlink points outside the repository")
    if not target.is_file():
        return SourceFile(relative, None, "not a regular file")
    size = target.stat().st_size
    if size > MAX_FILE_BYTES:
        return SourceFile(relative, None, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
    return SourceFile(relative, target.read_bytes())


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
