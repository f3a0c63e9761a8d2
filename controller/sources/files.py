"""Policy files from a working directory (what an editor or a pre-commit hook sees)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import git

from controller.sources.documents import MAX_FILE_BYTES
from controller.sources.loading import (
    POLICY_DIRS,
    YAML_SUFFIXES,
    SourceFile,
    ignored_submodule,
    is_under_policy_dirs,
    unread_file,
)

GITLINK_MODE = "160000"


def read_tree(root: Path) -> list[SourceFile]:
    """Every policy YAML file under `root`, refusing links that leave it and oversized files;
    other files under the policy folders are left out with a warning (`loading.unread_file`).

    Git submodules under a policy folder (a directory holding `.git`, or a gitlink in the
    index) are left out with a warning, exactly as `git.read_commit` leaves them out of a
    commit: the working tree reads what the commit would hold.
    """
    root = root.resolve()
    submodules = _gitlinks(root)
    found: list[SourceFile] = []
    for top in POLICY_DIRS:
        base = root / top
        if base.is_symlink() and not _inside(base.resolve(), root):
            found.append(SourceFile(top, None, "symlink points outside the repository"))
            continue
        if _is_submodule(base):
            submodules.add(top)
        if top in submodules or not base.is_dir():
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
                elif _is_submodule(link) or _relative(link, root) in submodules:
                    submodules.add(_relative(link, root))
                    subdirs.remove(subdir)  # os.walk does not descend into what is removed
            found.extend(_read_names(here, names, root))
    found.extend(ignored_submodule(path) for path in sorted(submodules))
    return found


def _read_names(here: Path, names: list[str], root: Path) -> Iterator[SourceFile]:
    """The files `names` of the folder `here`, sorted: policy files read, others warned about."""
    for name in sorted(names):
        if name.endswith(YAML_SUFFIXES):
            yield _read_file(here / name, root)
        elif (unread := unread_file(_relative(here / name, root))) is not None:
            yield unread


def _is_submodule(directory: Path) -> bool:
    """A checked-out submodule (or a nested repository) has `.git`, a file or a directory."""
    return not directory.is_symlink() and (directory / ".git").exists()


def _gitlinks(root: Path) -> set[str]:
    """The submodules the index records under the policy folders (checked out or not)."""
    try:
        with git.Repo(root) as repo:
            listing = repo.git.ls_files("--stage", "-z", "--", *POLICY_DIRS)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        return set()
    found = set()
    for entry in str(listing).split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.startswith(GITLINK_MODE) and is_under_policy_dirs(path):
            found.add(path)
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
