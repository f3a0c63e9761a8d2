"""Who may approve, as the server is configured: the `[access]` table read and compiled.

The policy lives in the controller's own configuration, never in the policy repository, so a
pull request cannot loosen it: the `[access]` table of `patchctl.toml`, or a TOML file with the
same table given by path (`load_access`). It says, per tenant path, who may approve (email
globs; a partner's entry covers its clients; `"*"` covers every tenant and is the only entry for
objects without a tenant), whether commits must be signed, and by which trusted keys (SSH
allowed-signers lines, GPG public keys); and which committers are forges (GitHub, GitLab, ...)
whose merge commits are judged by the people the merge records rather than by the forge.

The verdicts are pure and live in `controller.core.access` (`judge_change`, `judge_events`,
`filter_rejected`); this module reads files and keys (gpg) and re-exports those names for the
callers that configure and judge in one place. See docs/audit.md for the rules in full.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from controller import errors
from controller.core import access
from controller.core.access import (
    DEFAULT_GUARDED_KINDS,
    EVERY_TENANT,
    Forge,
    Rules,
    TenantRule,
    filter_rejected,
    judge_change,
    judge_events,
    matching_pattern,
)
from controller.kinds import KINDS
from controller.kinds.common import TENANT_PATTERN, independent_errors
from controller.sources import signatures

DEFAULT_FORGE_COMMITTERS = ("noreply@github.com",)

# The verdicts have their one home in `controller.core.access`; exported here with the policy.
__all__ = [
    "DEFAULT_FORGE_COMMITTERS",
    "DEFAULT_GUARDED_KINDS",
    "EVERY_TENANT",
    "AccessConfig",
    "AccessError",
    "AccessPolicy",
    "Forge",
    "ForgeConfig",
    "KeyConfig",
    "Rules",
    "TenantConfig",
    "TenantRule",
    "field_path",
    "filter_rejected",
    "judge_change",
    "judge_events",
    "load_access",
    "matching_pattern",
    "parse_access",
]


@dataclass(frozen=True, slots=True)
class AccessPolicy(access.AccessPolicy):
    """The server's access policy (`controller.core.access.AccessPolicy`), with the way to
    verify signatures against its trusted keys."""

    def verifier(self) -> signatures.Verifier:
        """A Verifier holding every trusted key (close it, or use it as a context manager)."""
        return signatures.Verifier(self.trusted)


class AccessError(errors.ConfigurationError):
    """The access policy cannot be read; the message names the file and the field."""


# --- the configuration file ------------------------------------------------------------------


class _Config(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=lambda name: name.replace("_", "-"),
        populate_by_name=True,
    )


class KeyConfig(_Config):
    """One trusted key: exactly one of `ssh`, `gpg` or `gpg-file`."""

    name: str = Field(min_length=1, description="How tenants and forges refer to this key.")
    ssh: str | None = Field(
        default=None,
        description="An allowed-signers line: `alice@example.com ssh-ed25519 AAAA...`; the "
        "first field is the identity the key signs as.",
    )
    gpg: str | None = Field(default=None, description="An armored GPG public key.")
    gpg_file: str | None = Field(
        default=None,
        description="A file holding an armored GPG public key (relative paths: "
        "relative to the configuration file).",
    )
    fingerprint: str | None = Field(
        default=None,
        description="GPG: the fingerprint the key must have (a pin against a swapped key file).",
    )


class TenantConfig(_Config):
    """Who may approve for one tenant path (and, for a partner, its clients)."""

    approvers: tuple[str, ...] = Field(
        default=(),
        description="Email addresses allowed to approve; globs such as `*@acme.example`.",
    )
    require_signed: bool | None = Field(
        default=None,
        description="Commits must carry a good signature by one of `keys` (unset: inherited).",
    )
    keys: tuple[str, ...] = Field(default=(), description="Names of trusted keys (see `keys`).")


class ForgeConfig(_Config):
    """A forge whose merge commits are judged by the people they record."""

    name: str = Field(min_length=1, description="For messages: `github`, `gitlab`, ...")
    committers: tuple[str, ...] = Field(
        min_length=1, description="Committer emails (globs) of the forge's merge commits."
    )
    keys: tuple[str, ...] = Field(
        default=(), description="Names of the keys the forge signs its commits with."
    )


class AccessConfig(_Config):
    """The `[access]` table."""

    require_signed: bool = Field(
        default=False, description="The default for tenants that do not say."
    )
    guarded_kinds: tuple[str, ...] = Field(
        default=DEFAULT_GUARDED_KINDS,
        description="Kinds whose changes are judged; Approval and Whitelist both approve patches.",
    )
    keys: tuple[KeyConfig, ...] = Field(default=(), description="Trusted keys.")
    tenants: dict[str, TenantConfig] = Field(
        default_factory=dict, description="Per tenant path (`acme`, `acme/retail`) or `*`."
    )
    forges: tuple[ForgeConfig, ...] = Field(default=(), description="Forge committers.")


def load_access(path: Path, *, required: bool = False) -> AccessPolicy:
    """The `[access]` table of a TOML file (`patchctl.toml`, or a file of its own).

    A file without the table gives the open policy, unless `required`.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccessError(f"{path}: {exc}") from None
    table = data.get("access")
    if table is None:
        if required:
            raise AccessError(f"{path}: no [access] table")
        return AccessPolicy.open()
    if not isinstance(table, dict):
        raise AccessError(f"{path}: access: expected a table")
    return parse_access(table, base_dir=path.parent, source=str(path))


def parse_access(
    table: Mapping[str, Any], *, base_dir: Path, source: str = "patchctl.toml"
) -> AccessPolicy:
    """Validate an `[access]` table and resolve its keys (GPG keys are read with gpg)."""
    try:
        config = AccessConfig.model_validate(table)
    except pydantic.ValidationError as exc:
        first = independent_errors(exc.errors(include_url=False))[0]
        raise AccessError(f"{source}: {field_path(*first['loc'])}: {first['msg']}") from None
    return _compile(config, base_dir=base_dir, source=source)


def field_path(*parts: str | int) -> str:
    """`('tenants', 'acme/retail', 'keys')` → `access.tenants."acme/retail".keys`, as in TOML."""
    out = "access"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}"
        else:
            out += f'."{part}"'
    return out


def _compile(config: AccessConfig, *, base_dir: Path, source: str) -> AccessPolicy:
    unknown_kinds = sorted(set(config.guarded_kinds) - KINDS.keys())
    if unknown_kinds:
        raise AccessError(
            f"{source}: {field_path('guarded-kinds')}: {unknown_kinds[0]!r} is not one of "
            + ", ".join(sorted(KINDS))
        )
    keys: dict[str, frozenset[str]] = {}
    ssh_lines: list[str] = []
    gpg_keys: list[str] = []
    for position, key in enumerate(config.keys):
        where = f"{source}: {field_path('keys', position)}"
        if key.name in keys:
            raise AccessError(f"{where}.name: duplicate key name {key.name!r}")
        try:
            fingerprints, ssh, gpg = _read_key(key, base_dir=base_dir)
        except (signatures.SignatureError, OSError, ValueError) as exc:
            raise AccessError(f"{where}: {exc}") from None
        keys[key.name] = fingerprints
        ssh_lines.extend(ssh)
        gpg_keys.extend(gpg)

    def fingerprints_of(names: Sequence[str], where: str) -> frozenset[str]:
        missing = [name for name in names if name not in keys]
        if missing:
            known = ", ".join(sorted(keys)) or "none"
            raise AccessError(f"{where}: no key named {missing[0]!r} (known: {known})")
        return frozenset(fp for name in names for fp in keys[name])

    tenants: dict[str, TenantRule] = {}
    for scope, entry in config.tenants.items():
        where = f"{source}: {field_path('tenants', scope)}"
        if scope != EVERY_TENANT and not re.fullmatch(TENANT_PATTERN, scope):
            raise AccessError(f"{where}: not a tenant path such as `acme` or `acme/retail`, or `*`")
        tenants[scope] = TenantRule(
            scope,
            tuple(pattern.lower() for pattern in entry.approvers),
            entry.require_signed,
            fingerprints_of(entry.keys, f"{where}.keys"),
        )
    forges = tuple(
        Forge(
            forge.name,
            tuple(pattern.lower() for pattern in forge.committers),
            fingerprints_of(forge.keys, f"{source}: {field_path('forges', position, 'keys')}"),
        )
        for position, forge in enumerate(config.forges)
    )
    return AccessPolicy(
        enforced=True,
        require_signed=config.require_signed,
        guarded_kinds=frozenset(config.guarded_kinds),
        tenants=tenants,
        forges=forges,
        trusted=signatures.TrustedKeys(tuple(ssh_lines), tuple(gpg_keys)),
    )


def _read_key(key: KeyConfig, *, base_dir: Path) -> tuple[frozenset[str], list[str], list[str]]:
    """(fingerprints, allowed-signers lines, armored GPG keys) of one key entry."""
    given = [value for value in (key.ssh, key.gpg, key.gpg_file) if value is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of ssh, gpg or gpg-file")
    if key.ssh is not None:
        signatures.ssh_principals(key.ssh)
        return frozenset({signatures.ssh_fingerprint(key.ssh)}), [key.ssh.strip()], []
    armored = (
        (base_dir / key.gpg_file).read_text(encoding="utf-8")
        if key.gpg_file is not None
        else key.gpg or ""
    )
    fingerprints = frozenset(signatures.gpg_fingerprints(armored))
    if key.fingerprint is not None:
        pinned = key.fingerprint.replace(" ", "").upper()
        if pinned not in fingerprints:
            raise ValueError(f"the key's fingerprints do not include the pinned {pinned}")
    return fingerprints, [], [armored]
