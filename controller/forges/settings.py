"""Which forge to report to: the `[forge]` table of `patchctl.toml`, or `serve --forge ...`.

```toml
[forge]
kind = "github"                       # github | gitlab | gitea (Gitea and Forgejo)
url = "https://api.github.com"        # the API root (default for github and gitlab)
repository = "acme/policies"          # owner/name; GitLab: the project path or its number
token-env = "PATCHCTL_FORGE_TOKEN"    # the variable holding the token (never the token)
```

The `serve` options `--forge`, `--forge-url`, `--forge-repository` and `--forge-token-env`
(and their `PATCHCTL_FORGE*` variables) override the table key by key. The token is read once
at start, so a forge that cannot be used stops `serve` before it serves (exit 2), and it is
registered with `controller.redaction` so that no log line or status can show it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from controller import errors
from controller.redaction import remember_secret

DEFAULT_TOKEN_ENV = "PATCHCTL_FORGE_TOKEN"  # noqa: S105 - the variable's name, not a secret
_KEYS = ("kind", "url", "repository", "token-env")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# owner/name (GitHub, Gitea), group/subgroup/project or a project number (GitLab)
_REPOSITORY = re.compile(r"^(?:[0-9]+|[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+)$")


class ForgeKind(StrEnum):
    """The forges whose APIs patchctl speaks."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"  # Gitea and Forgejo share the API


DEFAULT_URLS = {
    ForgeKind.GITHUB: "https://api.github.com",
    ForgeKind.GITLAB: "https://gitlab.com/api/v4",
}


class ForgeSettingsError(errors.ConfigurationError):
    """The forge settings cannot be used; the message names the file or option and the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgeSettings:
    """A forge to report to, validated; `token` is the secret itself (never shown by repr)."""

    kind: ForgeKind
    url: str
    repository: str
    token_env: str = DEFAULT_TOKEN_ENV
    token: str = field(default="", repr=False)


def resolve(
    table: Mapping[str, Any] | None,
    *,
    source: str,
    kind: str | None = None,
    url: str | None = None,
    repository: str | None = None,
    token_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ForgeSettings | None:
    """The forge from the `[forge]` table (`source` names the file) and the `serve` options
    (None: not given), or None when neither names a kind. ForgeSettingsError names the key at
    fault: an unknown key, an unknown kind, a missing URL or repository, an unset token."""
    table = _checked_table(table, source=source)
    chosen_kind = kind or table.get("kind")
    if not chosen_kind:
        if url or repository or table:
            raise ForgeSettingsError(
                f"{source}: [forge]: kind is required (github, gitlab or gitea), or --forge KIND"
            )
        return None
    forge_kind = _kind(chosen_kind)
    variable = token_env or table.get("token-env") or DEFAULT_TOKEN_ENV
    return ForgeSettings(
        kind=forge_kind,
        url=_api_root(url or table.get("url") or DEFAULT_URLS.get(forge_kind, "")),
        repository=_repository(repository or table.get("repository") or ""),
        token_env=variable,
        token=_token(variable, os.environ if environ is None else environ),
    )


def _checked_table(table: Mapping[str, Any] | None, *, source: str) -> dict[str, Any]:
    checked = dict(table or {})
    unknown = sorted(set(checked) - set(_KEYS))
    if unknown:
        raise ForgeSettingsError(
            f"{source}: [forge]: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}"
        )
    for key, value in checked.items():
        if not isinstance(value, str):
            raise ForgeSettingsError(f"{source}: [forge]: {key} must be a string")
    return checked


def _kind(text: str) -> ForgeKind:
    try:
        return ForgeKind(text)
    except ValueError:
        known = ", ".join(k.value for k in ForgeKind)
        raise ForgeSettingsError(
            f"forge kind {text!r} is not one of {known} (Forgejo: gitea)"
        ) from None


def _api_root(text: str) -> str:
    api = text.rstrip("/")
    if not api:
        raise ForgeSettingsError(
            "forge url is required for gitea (its API root, e.g. https://codeberg.org/api/v1)"
        )
    parts = urlsplit(api)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ForgeSettingsError(f"forge url {api!r} is not an http(s) API root")
    if parts.username or parts.password or parts.query:
        raise ForgeSettingsError(
            "forge url must not carry credentials or a query: the token comes from token-env"
        )
    return api


def _repository(text: str) -> str:
    repo = text.strip("/")
    if not repo:
        raise ForgeSettingsError(
            "forge repository is required (--forge-repository OWNER/NAME, or repository in [forge])"
        )
    if not _REPOSITORY.match(repo):
        raise ForgeSettingsError(
            f"forge repository {repo!r} is not owner/name (GitLab: group/project or its id)"
        )
    return repo


def _token(variable: str, environ: Mapping[str, str]) -> str:
    if not _ENV_NAME.match(variable):
        raise ForgeSettingsError(f"forge token-env {variable!r} is not an environment variable")
    token = environ.get(variable, "")
    if not token:
        raise ForgeSettingsError(
            f"the forge token is not set: put it in the environment variable {variable}"
        )
    remember_secret(token)
    return token
