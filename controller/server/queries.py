"""Strict query strings for the read, audit, report, plan and admin API (`strict_router`).

An unknown query parameter answers 422 naming it (a misspelt filter, `?stat=failed`, would
otherwise be ignored and the listing show every row), and so does a second value of a
parameter that takes one (`?state=failed&state=pending` would silently keep the last). The
parameters a route knows are the ones its handler and its dependencies declare, read from
FastAPI's own description of the route: the check cannot drift from the signature or from the
OpenAPI document. Values are validated by the declared types (422 naming the parameter).

The agent calls are not checked: an agent of another version may add a parameter this
service does not know, and a refused poll would stop its fleet (docs/api.md).
"""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request

from controller.server import models
from controller.server.errors import ApiError, summary

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi.dependencies.models import Dependant

_SEQUENCES = (list, tuple, set, frozenset)


def strict_router(*, tags: list[str]) -> APIRouter:
    """An `/api/v1` router whose every route refuses unknown and repeated query parameters
    (`strict_query`) and documents that 422."""
    return APIRouter(
        prefix="/api/v1",
        tags=list(tags),
        dependencies=[Depends(strict_query)],
        responses=models.error_responses(422),
    )


def strict_query(request: Request) -> None:
    """Raise ApiError 422 for every query parameter the route does not declare, and every one
    given more than once that takes one value; `details[].field` names each."""
    declared = declared_query(request.scope["route"].dependant)
    details = query_problems(request.query_params.multi_items(), declared)
    if details:
        raise ApiError(422, summary(details), details=details)


def query_problems(
    pairs: list[tuple[str, str]], declared: Mapping[str, bool]
) -> list[dict[str, str]]:
    """The problems of a query string's (name, value) pairs against the declared parameters
    (name -> takes several values), one `{field, message}` per parameter, by name. Purely
    computational."""
    counts: dict[str, int] = {}
    for name, _value in pairs:
        counts[name] = counts.get(name, 0) + 1
    known = ", ".join(sorted(declared)) or "none"
    details = []
    for name, count in sorted(counts.items()):
        if name not in declared:
            message = f"unknown query parameter; the parameters are {known}"
        elif count > 1 and not declared[name]:
            message = f"give one value, not {count}"
        else:
            continue
        details.append({"field": name, "message": message})
    return details


def declared_query(dependant: Dependant) -> dict[str, bool]:
    """The query parameters of a route (its handler's and its dependencies'), by the name a
    client sends (the alias), each with whether it takes several values."""
    found = {
        field.alias: _takes_several(field.field_info.annotation) for field in dependant.query_params
    }
    for sub in dependant.dependencies:
        found |= declared_query(sub)
    return found


def _takes_several(annotation: Any) -> bool:
    """`list[X]`, `list[X] | None` and the like: a parameter that may be repeated."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_takes_several(arg) for arg in typing.get_args(annotation))
    return origin in _SEQUENCES or annotation in _SEQUENCES
