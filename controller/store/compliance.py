"""Compliance records: one row per device and baseline, as the last reconcile wrote them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from controller.store import database, devices, schema
from controller.store.database import id_chunks, in_chunks
from controller.store.scopes import in_scope, is_device

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from sqlalchemy.engine import Connection


def list_compliance(
    conn: Connection,
    *,
    scope: str,
    device_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = schema.compliance.c
    query = sa.select(
        c.device_id, c.baseline, c.tenant, c.state, c.revision, c.evaluated_at, c.patches
    ).where(in_scope(c.tenant, scope))
    if device_id is not None:
        query = query.where(is_device(c.device_id, device_id))
    rows = conn.execute(
        query.order_by(c.tenant, c.device_id, c.baseline).limit(limit).offset(offset)
    )
    return [dict(row) for row in rows.mappings()]


def counts(conn: Connection, *, scope: str | None) -> dict[tuple[str, str, str], int]:
    """Compliance rows of `scope` (None: all) counted by (tenant, baseline, state), in that
    order."""
    c = schema.compliance.c
    rows = conn.execute(
        sa.select(c.tenant, c.baseline, c.state, sa.func.count())
        .where(in_scope(c.tenant, scope))
        .group_by(c.tenant, c.baseline, c.state)
        .order_by(c.tenant, c.baseline, c.state)
    )
    return {(tenant, baseline, state): int(n) for tenant, baseline, state, n in rows}


@dataclass(frozen=True, slots=True)
class DeviceCompliance:
    """One compliance row with its device's name, OS family and reboot flag, as a report
    reads it. `patches` is the stored JSON document (`{"missing": [...], "counts": {...},
    ...}`), as written; the reader checks its shape."""

    device_id: str
    baseline: str
    tenant: str
    state: str
    revision: str
    evaluated_at: datetime
    patches: Any
    name: str
    os_family: str
    reboot_required: bool


def with_devices(conn: Connection, *, scope: str | None) -> list[DeviceCompliance]:
    """The compliance rows of `scope` (None: all) joined to their devices, by tenant, device
    name and baseline; `reboot_required` is `devices.reboot_pending`."""
    c, d = schema.compliance.c, schema.devices.c
    rows = conn.execute(
        sa.select(
            c.device_id,
            c.baseline,
            c.tenant,
            c.state,
            c.revision,
            c.evaluated_at,
            c.patches,
            d.name,
            d.os_family,
            devices.reboot_pending().label("reboot_required"),
        )
        .join(schema.devices, d.id == c.device_id)
        .where(in_scope(c.tenant, scope))
        .order_by(c.tenant, d.name, c.baseline)
    )
    return [
        DeviceCompliance(**{**row, "reboot_required": bool(row["reboot_required"])})
        for row in rows.mappings()
    ]


def states_by_device(conn: Connection, *, scope: str | None) -> dict[str, tuple[str, ...]]:
    """Device id → the compliance states of its baselines (one per baseline, in no promised
    order), for the devices of `scope` (None: all) that have any."""
    c = schema.compliance.c
    found: dict[str, list[str]] = {}
    query = sa.select(c.device_id, c.state).where(in_scope(c.tenant, scope))
    for device_id, state in conn.execute(query):
        found.setdefault(device_id, []).append(str(state))
    return {device_id: tuple(states) for device_id, states in found.items()}


def stored(
    conn: Connection, *, devices: Collection[str] | None
) -> dict[tuple[str, str], tuple[str, str]]:
    """The stored compliance of `devices` (None: every device): (device id, baseline) →
    (state, patches document as JSON text), read in `database.id_chunks`.

    The text is not decoded: a row whose text is what `encoding` makes of a document holds
    that document (the writer's comparison needs no decoding). On PostgreSQL it is JSONB's
    own text form, whatever text was written."""
    c = schema.compliance.c
    query = sa.select(c.device_id, c.baseline, c.state, sa.cast(c.patches, sa.Text))
    return {
        (device_id, baseline): (state, text)
        for chunk in id_chunks(devices)
        # fetched whole (one DBAPI fetchall, not a call per row): a batch's rows, or the table
        for device_id, baseline, state, text in conn.execute(
            query if chunk is None else query.where(c.device_id.in_(chunk))
        ).all()
    }


def encoding(conn: Connection) -> Callable[[Any], str]:
    """The JSON text `replace` stores for a patches document, and that `stored` reads back
    for it. On SQLite: `json.dumps` as SQLAlchemy's JSON type wrote the rows before (the text
    is kept as written). On PostgreSQL: JSONB's own output form, in which it answers any
    stored document whatever text was written: object keys by length, then bytes
    (`lengthCompareJsonbStringValue` in PostgreSQL's jsonb_util.c; the docs only say the
    order is not kept), `, ` and `: ` between items, no ASCII escapes; checked against a
    live server by the tests.

    Equal text means equal documents; unequal text may still hold an equal document
    (written by another writer), so a comparison decodes before deciding they differ."""
    return json.dumps if conn.dialect.name == "sqlite" else _jsonb_text


def _jsonb_text(document: Any) -> str:
    return json.dumps(_jsonb_order(document), ensure_ascii=False)


def _jsonb_order(value: Any) -> Any:
    """`value` with the keys of every object in JSONB's order (length in bytes, then bytes)."""
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
        return {key: _jsonb_order(item) for key, item in ordered}
    if isinstance(value, list | tuple):
        return [_jsonb_order(item) for item in value]
    return value


def devices_with_rows(conn: Connection, *, besides: Collection[str] = ()) -> set[str]:
    """The ids of the devices that have compliance rows, but those in `besides` (ids only,
    streamed: what grows is the answer)."""
    c = schema.compliance.c
    rows = conn.execute(sa.select(c.device_id).distinct().execution_options(yield_per=10_000))
    return {device_id for (device_id,) in rows if device_id not in besides}


def row_count(conn: Connection) -> int:
    """How many compliance rows are stored (one per device and baseline)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(schema.compliance)).scalar_one())


STATISTICS_AFTER = 10_000  # rows written by one pass from which PostgreSQL's are refreshed


def refresh_statistics(conn: Connection) -> None:
    """Have PostgreSQL sample the compliance table again (`ANALYZE`), within the caller's
    transaction (its own new rows count: PostgreSQL's analyze.c samples them). After a first
    pass wrote a row per device, the table's statistics still said it was empty (autovacuum
    had not come by), and each of a later pass's batched reads by device scanned the whole
    table: 422 s for a second pass over 1,000,000 devices (`bench/million.py`), 0.36 s a
    batch of 5,000 at 100,000 against 0.17 s analysed. SQLite plans by its indexes alone."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE compliance")


def replace(
    conn: Connection, *, remove: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]
) -> None:
    """Delete the (device id, baseline) rows `remove` in chunked set-based statements, then
    insert `rows` (compliance table columns; `patches` the document's JSON text, as
    `encoding` makes it) in one driver executemany (`database.insert_many`: a first pass
    writes a row per device and baseline)."""
    c = schema.compliance.c
    for chunk in in_chunks(remove):
        conn.execute(
            schema.compliance.delete().where(sa.tuple_(c.device_id, c.baseline).in_(chunk))
        )
    database.insert_many(conn, _ENCODED, rows, skip_existing=False)


class _EncodedJson(sa.types.TypeDecorator[str]):
    """A JSON column bound as the text already encoded: no serialising per row; cast to
    JSONB on PostgreSQL, stored as the text on SQLite."""

    impl = sa.Text
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, sa.Text().with_variant(JSONB(), "postgresql"))


# the compliance table as `replace` writes it (every column's own type but `patches`, bound
# as encoded text); a metadata of its own: never created, only written through
_ENCODED = sa.Table(
    schema.compliance.name,
    sa.MetaData(),
    *(
        sa.Column(
            c.name,
            _EncodedJson() if c.name == "patches" else c.type,
            primary_key=c.primary_key,
        )
        for c in schema.compliance.columns
    ),
)
