"""The state store: devices, scans, tokens, jobs, the patch catalogue, alerts, audit and status.

SQLite (WAL) by default, PostgreSQL by URL; the schema is migrated by Alembic on open
(`open_store`), and a database written by a newer patchctl is refused (`SchemaTooNewError`).

Modules, all functions over a SQLAlchemy `Connection` inside `store.read()` / `store.write()`:
`schema` (the tables), `tokens` (create, authenticate, revoke), `devices` (enrol, listings,
patch states), `reports` (bulk ingest of agent reports), `jobs` and `job_states` (issuing,
delivery, the pure state machine), `catalogue` (`upsert_records`, `load_catalogue`),
`history` (alerts, audit events, reconcile runs, compliance, status values), `observed` (the
planner's `ObservedState`, whole or per device) and `changes` (what changed of the planner's
inputs, recorded by the writers above, read by incremental passes).
"""

from controller.store.database import SchemaTooNewError, Store, StoreError, open_store

__all__ = ["SchemaTooNewError", "Store", "StoreError", "open_store"]
