"""The state store: devices, scans, tokens, jobs, the patch catalogue, alerts, audit and status.

SQLite (WAL) by default, PostgreSQL by URL; the schema is migrated by Alembic on open
(`open_store`), and a database written by a newer patchctl is refused (`SchemaTooNewError`).

Modules, all functions over a SQLAlchemy `Connection` inside `store.read()` / `store.write()`:
`schema` (the tables), `tokens` (create, authenticate, revoke), `devices` (enrol, listings,
patch states), `reports` (bulk ingest of agent reports), `jobs` and `job_states` (issuing,
delivery, the pure state machine), `catalogue` (`upsert_records`, `load_catalogue`),
`alerts`, `audit` (the audit trail's rows), `runs` (reconcile attempts), `compliance`, `status`
(the key/value status table), `findings`, `operations` (operators' day-2 commands), `leases`,
`scopes`. SQL lives here and nowhere else (a test in `tests/test_architecture.py` says so).

Callers outside the store hold a `Connection` only to pass it on (re-exported here, so they
need no SQLAlchemy import), and catch `DatabaseError` (SQLAlchemy's root error) where a failed
statement must not stop them.

`observed` (the planner's `ObservedState`, whole or per device) and `changes` (what changed of
the planner's inputs, recorded by the writers above, read by incremental passes).
"""

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError as DatabaseError

from controller.store.database import SchemaTooNewError, Store, StoreError, open_store

__all__ = [
    "Connection",
    "DatabaseError",
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "open_store",
]
