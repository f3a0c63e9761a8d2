"""Tenant scopes and JSON mentions in queries: a leaf module (schema only), so every store
module can use it without import cycles."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from controller.kinds.common import device_name
from controller.store import schema


def in_scope(column: sa.ColumnElement[str], scope: str | None) -> sa.ColumnElement[bool]:
    """Rows of tenant `scope` and of its clients (a partner sees its clients); every row when
    `scope` is None (the command line on the controller's own database, without --tenant)."""
    if scope is None:
        return sa.true()
    return sa.or_(column == scope, column.like(scope + "/%"))


def is_device(column: sa.ColumnElement[str], device: str) -> sa.ColumnElement[bool]:
    """Rows of one device, named by its id or by its name (the host name, case-insensitive:
    `RealHost.Example.org` finds `realhost.example.org`). The caller's tenant scope still
    applies, so a name never reaches a device outside it."""
    by_name = sa.select(schema.devices.c.id).where(schema.devices.c.name == device_name(device))
    return sa.or_(column == device, column.in_(by_name.scalar_subquery()))


def visible(column: sa.ColumnElement[str], scope: str | None) -> sa.ColumnElement[bool]:
    """Rows of `scope` (as `in_scope`) and rows without a tenant, which concern every tenant (a
    policy that applies everywhere, an invalid revision); every row when `scope` is None."""
    if scope is None:
        return sa.true()
    return sa.or_(column.is_(None), in_scope(column, scope))


def mentions(column: sa.ColumnElement[Any], text: str) -> sa.ColumnElement[bool]:
    """A cheap pre-filter on a JSON column: its text contains `"<text>"` (an id in a list or a
    value). Callers check the exact meaning on the rows it keeps."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(column, sa.Text).like(f'%"{escaped}"%', escape="\\")
