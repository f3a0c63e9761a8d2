"""Alembic environment: migrations run on the connection `open_store` hands over.

There is no alembic.ini: `controller.store.database` builds the configuration in code and puts
its open connection (inside a write transaction) in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from controller.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("patchctl migrations run through controller.store.open_store only")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
