"""Alembic's environment for the warehouse, run by `candle_pipeline.warehouse.schema`: it hands
over the connection (inside its transaction, under the advisory lock) and the schema name; the
version table lives in that schema."""

import sqlalchemy as sa
from alembic import context

from candle_pipeline.warehouse.schema import CONNECTION_ATTRIBUTE, SCHEMA_ATTRIBUTE

connection: sa.Connection = context.config.attributes[CONNECTION_ATTRIBUTE]
schema: str = context.config.attributes[SCHEMA_ATTRIBUTE]

connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
context.configure(connection=connection, version_table_schema=schema)
with context.begin_transaction():
    context.run_migrations()
