"""Alembic environment: the engine comes from the collector (config.attributes['connection'])."""

from __future__ import annotations

from alembic import context

from collector.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `evidence-collector db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
