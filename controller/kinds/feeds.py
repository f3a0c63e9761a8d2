"""PatchFeed: a source of published patch records the controller imports on a schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import Document, Model, OsFamily, PositiveDuration
from controller.vocabularies import FeedFormat as FeedFormat  # noqa: PLC0414 - re-exported


class PatchFeedSpec(Model):
    format: FeedFormat = Field(description="Record format of the source.")
    source: str = Field(
        min_length=1,
        description="A path in this repository (read at the applied revision), or an http(s) "
        "URL or absolute local path listed in the server's `[feeds] allow` (patchctl.toml); "
        "anything else is refused.",
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
