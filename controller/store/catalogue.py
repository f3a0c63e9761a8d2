"""The patch catalogue in the store: one row per patch id, the whole record as JSON.

`upsert_records` is idempotent: importing the same records twice changes nothing the second
time (counted as unchanged), a changed record replaces the stored one (updated), and a record
once withdrawn stays withdrawn even when a later import omits the flag: a vendor that pulled a
patch has said it should not be installed, and a stale mirror must not bring it back.
Withdrawn records are kept (never deleted) so that explain and history can still name them.

Every write that changes the catalogue also sets its version (`catalogue_version`), a token in
the status table: whoever caches something built from the catalogue (the applicability index of
`controller.store.findings`) compares one primary-key read with the token it built from, in
whichever process or replica changed the catalogue.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core import patches as patch_records
from controller.store import changes, schema, status
from controller.store.database import Store

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

    from sqlalchemy.engine import Connection

    from controller.core.patches import PatchRecord
    from controller.kinds.common import OsFamily

_CHUNK = 500
VERSION_KEY = "catalogue"  # status key: {"version": token, "records": count at that version}
_UPDATED_COLUMNS = (
    "os",
    "severity",
    "classification",
    "released",
    "withdrawn",
    "digest",
    "record",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


def upsert_records(
    store_or_conn: Store | Connection,
    records: Iterable[PatchRecord],
    *,
    now: datetime | None = None,
) -> ImportCounts:
    """Insert new records, update changed ones, count the rest; in one transaction.

    With a `Store`, opens its own write transaction; with a `Connection`, writes in the caller's.
    When the same id comes twice in `records`, the last one wins.
    """
    stamp = now or datetime.now(tz=UTC)
    latest = {record.id: record for record in records}
    with _connection(store_or_conn) as conn:
        counts = _upsert(conn, list(latest.values()), now=stamp)
        if counts.new or counts.updated:
            _bump_version(conn, now=stamp)
        return counts


def catalogue_version(conn: Connection) -> str:
    """The catalogue's version token: it changes with every write that changes a record
    ("" for a catalogue never written through `upsert_records`)."""
    s = schema.status.c
    value = conn.execute(sa.select(s.value).where(s.key == VERSION_KEY)).scalar_one_or_none()
    return str(value.get("version", "")) if isinstance(value, dict) else ""


def _bump_version(conn: Connection, *, now: datetime) -> None:
    # A random token, not a counter: two replicas importing at once cannot both write "n + 1"
    # for different contents, and a reader only ever compares tokens for equality.
    value = {"version": uuid.uuid4().hex, "records": catalogue_size(conn)}
    status.set_status(conn, VERSION_KEY, value, now=now)
    changes.record_catalogue(conn, now=now)


def load_catalogue(
    store_or_conn: Store | Connection,
    *,
    os: OsFamily | None = None,
    include_withdrawn: bool = True,
) -> dict[str, PatchRecord]:
    """The catalogue as records by id, optionally only one OS family or without withdrawn ones."""
    p = schema.patches.c
    query = sa.select(p.record).order_by(p.id)
    if os is not None:
        query = query.where(p.os == os.value)
    if not include_withdrawn:
        query = query.where(p.withdrawn.is_(False))
    with _connection(store_or_conn, write=False) as conn:
        return {
            record.id: record
            for record in (patch_records.from_dict(data) for data in conn.execute(query).scalars())
        }


def catalogue_size(store_or_conn: Store | Connection) -> int:
    with _connection(store_or_conn, write=False) as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.patches)).scalar_one()
        return int(count)


def _upsert(conn: Connection, records: list[PatchRecord], *, now: datetime) -> ImportCounts:
    p = schema.patches.c
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    unchanged = 0
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK]
        stored = {
            row.id: (row.digest, row.withdrawn)
            for row in conn.execute(
                sa.select(p.id, p.digest, p.withdrawn).where(p.id.in_([r.id for r in chunk]))
            )
        }
        for record in chunk:
            previous = stored.get(record.id)
            final = replace(record, withdrawn=True) if previous and previous[1] else record
            row = _row(final, now=now)
            if previous is None:
                new_rows.append(row)
            elif previous[0] != row["digest"]:
                changed_rows.append(row | {"b_id": row["id"]})
            else:
                unchanged += 1
    if new_rows:
        conn.execute(schema.patches.insert(), new_rows)
    if changed_rows:
        conn.execute(
            schema.patches.update()
            .where(p.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in _UPDATED_COLUMNS}),
            changed_rows,
        )
    return ImportCounts(new=len(new_rows), updated=len(changed_rows), unchanged=unchanged)


def _row(record: PatchRecord, *, now: datetime) -> dict[str, Any]:
    data = patch_records.to_dict(record)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return {
        "id": record.id,
        "os": record.os.value if record.os else None,
        "severity": record.severity.value,
        "classification": record.classification.value,
        "released": record.released,
        "withdrawn": record.withdrawn,
        "digest": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "record": data,
        "updated_at": now,
    }


@contextlib.contextmanager
def _connection(store_or_conn: Store | Connection, *, write: bool = True) -> Iterator[Connection]:
    if isinstance(store_or_conn, Store):
        with store_or_conn.write() if write else store_or_conn.read() as conn:
            yield conn
    else:
        yield store_or_conn


def severities(conn: Connection, patch_ids: Collection[str]) -> dict[str, str | None]:
    """The catalogue's severity word of each of `patch_ids` it knows (None when it has none);
    unknown ids are left out."""
    p = schema.patches.c
    ordered = sorted(patch_ids)
    found: dict[str, str | None] = {}
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found |= {
            row.id: row.severity
            for row in conn.execute(sa.select(p.id, p.severity).where(p.id.in_(chunk)))
        }
    return found
