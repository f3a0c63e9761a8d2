"""Tenant scopes in queries: a leaf module (schema only), so every store module can use it
without import cycles."""

from __future__ import annotations

import sqlalchemy as sa


def in_scope(column: sa.ColumnElement[str], scope: str | None) -> sa.ColumnElement[bool]:
    """Rows of tenant `scope` and of its clients (a partner sees its clients); every row when
    `scope` is None (the command line on the controller's own database, without --tenant)."""
    if scope is None:
        return sa.true()
    return sa.or_(column == scope, column.like(scope + "/%"))
