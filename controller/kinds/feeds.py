"""PatchFeed: a source of published patch records the controller imports on a schedule.

Where a source may point is decided in two steps. What the text alone decides is here
(`source_problem`), so `validate` refuses it at `spec.source` and the service refuses it with the
same words (`controller.runtime.feedsources`): a path that leaves the repository, a URL whose
scheme is not http(s) or that has no host. What needs the server's configuration — whether an
http(s) URL or an absolute local path is listed in `[feeds] allow` of `patchctl.toml` — is
decided by the service only, because `validate` cannot see that file.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from controller.kinds.common import Document, Model, OsFamily, PositiveDuration
from controller.vocabularies import FeedFormat as FeedFormat  # noqa: PLC0414 - re-exported
from controller.vocabularies import http_url_problem

LEAVES_REPOSITORY = (
    "leaves the repository: a repository path is relative to its top; a file elsewhere is "
    "named by an absolute path listed in [feeds] allow of the server configuration"
)


def is_url(source: str) -> bool:
    """Whether a source is a URL (`scheme://...`), fetched only when http(s) and allowed."""
    return "://" in source


def is_local_path(source: str) -> bool:
    """Whether a source names a file outside the repository (an absolute path, `~/...`), read
    only when the server's `[feeds] allow` lists it."""
    return not is_url(source) and (posixpath.isabs(source) or source.startswith("~"))


def repository_path(source: str) -> str | None:
    """The normalised repository path of a source that is neither a URL nor a local path
    (`feeds/./osv/` → `feeds/osv`, `\\` read as `/`); None when it leaves the repository."""
    normal = posixpath.normpath(source.replace("\\", "/"))
    if normal == ".." or normal.startswith(("../", "/")):
        return None
    return normal


def source_problem(source: str) -> str | None:
    """Why `source` can never be read, whatever the server allows, as words that follow the
    source (`'../x' leaves the repository: ...`); None when it may be read. Purely
    computational: no file is looked at."""
    if is_url(source):
        return http_url_problem(source)
    if is_local_path(source) or repository_path(source) is not None:
        return None
    return LEAVES_REPOSITORY


def _readable_source(source: str) -> str:
    problem = source_problem(source)
    if problem is not None:
        raise ValueError(f"{source!r} {problem}")
    return source


class PatchFeedSpec(Model):
    format: FeedFormat = Field(description="Record format of the source.")
    source: Annotated[str, AfterValidator(_readable_source)] = Field(
        min_length=1,
        description="A path in this repository (read at the applied revision; `..` may not "
        "leave it), or an http(s) URL or absolute local path listed in the server's `[feeds] "
        "allow` (patchctl.toml); anything else is refused. `validate` refuses what the text "
        "alone decides (a path leaving the repository, a scheme other than http(s)); the "
        "allow list is checked by the service.",
    )
    os: OsFamily | None = Field(default=None, description="OS family of the records.")
    release: str | None = Field(
        default=None,
        description="OS release for formats that do not name it (deb-packages), e.g. `debian:12`.",
    )
    refresh: PositiveDuration = Field(
        default=timedelta(hours=6), description="How often to re-import."
    )


class PatchFeed(Document):
    """A patch feed imported into the catalogue."""

    KIND: ClassVar[str] = "PatchFeed"
    kind: Literal["PatchFeed"] = Field(description="Always `PatchFeed`.")
    spec: PatchFeedSpec = Field(description="Format, source and refresh interval.")
