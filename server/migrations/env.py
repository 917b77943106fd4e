"""Alembic environment: migrations run on a connection handed over by server.storage.migrate."""

from __future__ import annotations

from alembic import context

from server.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `lien migrate` (server.storage.migrate)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
