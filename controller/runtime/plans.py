"""The pull-request plan as a document: built once, rendered as JSON or as a PR comment.

`patchctl plan` (locally, with or without a store) and `GET /api/v1/plan` (the service, on the
live fleet) build the same document with `plan_document`; `render_markdown` turns any such
document, including one received from the service, into a comment under `MARKDOWN_LIMIT`
characters. The catalogue snapshot (`GET /api/v1/catalogue`, `patchctl plan --catalogue FILE`)
has one format, read by `read_catalogue`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from controller import errors
from controller.core import review
from controller.core.desired import DesiredState
from controller.core.observed import JobLedger, ObservedState
from controller.core.projection import project
from controller.kinds.common import Classification, tenant_contains

MARKDOWN_LIMIT = 60_000
DEVICE_NAMES_SHOWN = 5
DIFF_LINES_SHOWN = 200
NO_CATALOGUE = (
    "_No patch catalogue at hand: patch ids were not checked "
    "(`--catalogue FILE` or `--server URL`)._"
)


class CatalogueFileError(errors.ConfigurationError, ValueError):
    """A catalogue snapshot file that cannot be used; the message names the file and field."""


# --- the document -------------------------------------------------------------------------------


def plan_document(
    base: DesiredState,
    head: DesiredState,
    *,
    now: datetime,
    observed: ObservedState | None,
    catalogue: review.Catalogue | None,
    scope: str | None = None,
) -> dict[str, Any]:
    """The plan as JSON types: object changes in words, device effects, warnings.

    `observed` None: no fleet at hand (device effects and compliance are left out, `fleetKnown`
    false). `scope` (a tenant path): only that tenant's devices, and only objects of that
    tenant, its clients or every tenant, appear (a read token's view).
    """
    if scope is not None and observed is not None:
        observed = _scoped(observed, scope)
    fleet = observed if observed is not None else ObservedState()
    projection = project(base, head, fleet, now=now)
    found = review.review(base, head, now=now, catalogue=catalogue, observed=observed)
    objects = [o for o in found.objects if _visible(o.change.key.owner, scope)]
    warnings = [w for w in found.warnings if _visible(w.object.owner, scope)]
    document: dict[str, Any] = {
        "base": base.revision,
        "head": head.revision,
        "now": now.isoformat(),
        "scope": scope,
        "changed": bool(objects),
        "catalogue": None if catalogue is None else {"patches": len(catalogue)},
        "fleetKnown": observed is not None,
        "changes": [_change_json(o) for o in objects],
        "warnings": [
            {"object": str(w.object), "code": w.code.value, "message": w.message} for w in warnings
        ],
    }
    if observed is not None:
        document |= {
            "devices": [
                {
                    "id": d.device_id,
                    "tenant": d.tenant,
                    "name": d.name,
                    "granted": list(d.granted),
                    "revoked": list(d.revoked),
                    "nextWindow": d.next_window,
                    "nextWindowStart": d.next_window_start.isoformat()
                    if d.next_window_start
                    else None,
                }
                for d in projection.devices
            ],
            "complianceBefore": projection.compliance_before,
            "complianceAfter": projection.compliance_after,
            "pendingApprovals": {
                "before": projection.pending_before,
                "after": projection.pending_after,
            },
        }
    return document


def _visible(tenant: str | None, scope: str | None) -> bool:
    return scope is None or tenant is None or tenant_contains(scope, tenant)


def _scoped(observed: ObservedState, scope: str) -> ObservedState:
    devices = tuple(d for d in observed.devices if tenant_contains(scope, d.tenant))
    ids = {d.id for d in devices}
    return replace(
        observed,
        devices=devices,
        scans={k: v for k, v in observed.scans.items() if k in ids},
        jobs=JobLedger({i: jobs for i, jobs in observed.jobs.by_device.items() if i in ids}),
    )


def _patches(refs: tuple[review.PatchRef, ...]) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "title": r.title or None, "severity": r.severity or None, "known": r.known}
        for r in refs
    ]


def _change_json(found: review.ObjectReview) -> dict[str, Any]:
    key = found.change.key
    return {
        "object": str(key),
        "kind": key.kind,
        "tenant": key.tenant,
        "name": key.name,
        "event": found.change.event.value,
        "action": found.change.action.value,
        "approved": _patches(found.approved),
        "revoked": _patches(found.revoked),
        "rejected": _patches(found.rejected),
        "unrejected": _patches(found.unrejected),
        "targetsAdded": list(found.targets_added),
        "targetsRemoved": list(found.targets_removed),
        "expires": found.expires.isoformat() if found.expires else None,
        "expiresInDays": found.expires_in_days,
        "direction": found.direction,
        "details": list(found.details),
        "diff": found.diff,
    }


# --- the comment --------------------------------------------------------------------------------


def render_markdown(document: dict[str, Any]) -> str:
    """A PR comment: warnings and object changes first, device effects after, cut to stay under
    `MARKDOWN_LIMIT` characters (the JSON format has everything)."""
    lines = [f"### patchctl plan: `{document['base']}` → `{document['head']}`", ""]
    changes = document["changes"]
    if not changes:
        lines.append("No policy object changes.")
    else:
        lines.append(f"{len(changes)} policy object(s) change.")
    if document["warnings"]:
        lines += ["", f"**Warnings ({len(document['warnings'])})**", ""]
        lines += [f"- ⚠️ `{w['object']}`: {_text(w['message'])}" for w in document["warnings"]]
    for change in changes:
        lines += ["", *_change_lines(change)]
    if document["catalogue"] is None:
        lines += ["", NO_CATALOGUE]
    lines.append("")
    if not document["fleetKnown"]:
        lines.append("_Fleet state not available here: device effects are not shown._")
    else:
        lines += _device_section(document)
        lines += _compliance_section(document)
    text = "\n".join(lines) + "\n"
    if len(text) > MARKDOWN_LIMIT:
        cut = text[: MARKDOWN_LIMIT - 200].rsplit("\n", 1)[0]
        text = cut + "\n\n_… output truncated; run `patchctl plan --format json` for all of it._\n"
    return text


def _change_lines(change: dict[str, Any]) -> list[str]:
    title = f"#### `{change['object']}`: {change['event']}"
    if change["direction"]:
        title += f" ({change['direction']})"
    lines = [title, ""]
    for label, key in (
        ("approves", "approved"),
        ("revokes", "revoked"),
        ("rejects", "rejected"),
        ("no longer rejects", "unrejected"),
    ):
        lines += [f"- {label} {_patch_words(patch)}" for patch in change[key]]
    if change["targetsAdded"]:
        lines.append(f"- targets added: {', '.join(change['targetsAdded'])}")
    if change["targetsRemoved"]:
        lines.append(f"- targets removed: {', '.join(change['targetsRemoved'])}")
    lines += [f"- {_text(detail)}" for detail in change["details"]]
    if change["diff"]:
        lines += [*([""] if lines[-1] else []), *_diff_block(change["diff"])]
    return lines


def _patch_words(patch: dict[str, Any]) -> str:
    words = f"**{patch['id']}**"
    if patch["severity"]:
        words += f" ({patch['severity']})"
    if patch["title"]:
        words += f": {_text(patch['title'])}"
    if patch["known"] is False:
        words += " (not in the catalogue)"
    return words


def _text(value: str) -> str:
    """Policy and feed text inside a comment: one line, no raw HTML."""
    return " ".join(value.split()).replace("<", "&lt;").replace(">", "&gt;")


def _diff_block(diff: str) -> list[str]:
    lines = diff.splitlines()
    shown = lines[:DIFF_LINES_SHOWN]
    if len(lines) > DIFF_LINES_SHOWN:
        shown.append(f"... {len(lines) - DIFF_LINES_SHOWN} more line(s)")
    # A fence longer than any backtick run in the script, so the script cannot close it.
    longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
    fence = "`" * max(3, longest + 1)
    return [
        "<details><summary>script diff</summary>",
        "",
        f"{fence}diff",
        *shown,
        fence,
        "",
        "</details>",
    ]


def _device_section(document: dict[str, Any]) -> list[str]:
    devices = document["devices"]
    if not devices:
        return ["No device gains or loses an installable patch."]
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...], str | None], list[str]] = {}
    for d in devices:
        group_key = (d["tenant"], tuple(d["granted"]), tuple(d["revoked"]), d["nextWindow"])
        groups.setdefault(group_key, []).append(d["name"])
    lines = [
        f"**{len(devices)} device(s) affected**",
        "",
        "| tenant | newly installable | no longer installable | devices | next window |",
        "|---|---|---|---|---|",
    ]
    for (tenant, granted, revoked, window), names in sorted(groups.items(), key=lambda i: i[0][0]):
        shown = ", ".join(names[:DEVICE_NAMES_SHOWN])
        more = (
            f" and {len(names) - DEVICE_NAMES_SHOWN} more"
            if len(names) > DEVICE_NAMES_SHOWN
            else ""
        )
        lines.append(
            f"| {tenant} | {', '.join(granted) or '-'} | {', '.join(revoked) or '-'} "
            f"| {len(names)}: {shown}{more} | {window or 'none'} |"
        )
    return lines


def _compliance_section(document: dict[str, Any]) -> list[str]:
    before, after = document["complianceBefore"], document["complianceAfter"]
    lines = [
        "",
        "**Compliance after the next window** (if every installable patch installs)",
        "",
        "| baseline | before | after |",
        "|---|---|---|",
    ]
    lines.extend(
        f"| {baseline} | {_share(before.get(baseline, {}))} | {_share(after.get(baseline, {}))} |"
        for baseline in sorted(before.keys() | after.keys())
    )
    pending = document["pendingApprovals"]
    lines += ["", f"Pending approvals: {pending['before']} → {pending['after']}"]
    return lines


def _share(states: dict[str, int]) -> str:
    total = sum(states.values())
    if not total:
        return "-"
    return f"{100 * states.get('compliant', 0) / total:.0f}% ({states.get('compliant', 0)}/{total})"


# --- the catalogue snapshot ---------------------------------------------------------------------


def catalogue_json(catalogue: review.Catalogue, *, version: str | None) -> dict[str, Any]:
    """The snapshot as `GET /api/v1/catalogue` serves it and `--catalogue FILE` reads it."""
    return {
        "version": version,
        "patches": [
            {
                "id": e.id,
                "title": e.title,
                "severity": e.severity or None,
                "os": e.os,
                "classification": e.classification,
                "product": e.product or None,
                "rating": e.rating,
            }
            for e in sorted(catalogue.values(), key=lambda e: e.id)
        ],
    }


def read_catalogue(path: Path) -> dict[str, review.CatalogueEntry]:
    """A catalogue snapshot file (`catalogue_json`'s format): `{"patches": [{"id", "title"?,
    "severity"?, "os"?, "classification"?, "product"?, "rating"?}]}`. CatalogueFileError
    names the file and the field at fault. Without `classification` (older snapshots) an entry
    is not used to judge whether a baseline rule can match."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueFileError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueFileError(f"{path}: not JSON: {exc}") from None
    entries = data.get("patches") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CatalogueFileError(f"{path}: patches: expected a list of patch objects")
    found: dict[str, review.CatalogueEntry] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: patches[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise CatalogueFileError(f"{where}.id: expected a patch id string")
        for field in ("title", "severity", "os", "classification", "product"):
            if entry.get(field) is not None and not isinstance(entry[field], str):
                raise CatalogueFileError(f"{where}.{field}: expected a string or null")
        known = {c.value for c in Classification}
        if entry.get("classification") is not None and entry["classification"] not in known:
            message = f"expected one of {', '.join(sorted(known))}"
            raise CatalogueFileError(f"{where}.classification: {message}")
        rating = entry.get("rating")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int | float)):
            raise CatalogueFileError(f"{where}.rating: expected a number or null")
        found[entry["id"]] = review.CatalogueEntry(
            id=entry["id"],
            title=entry.get("title") or "",
            severity=entry.get("severity") or "",
            os=entry.get("os"),
            classification=entry.get("classification"),
            product=entry.get("product") or "",
            rating=float(rating) if rating is not None else None,
        )
    return found
