"""Alembic migrations of the state store, run by `controller.store.open_store`."""
