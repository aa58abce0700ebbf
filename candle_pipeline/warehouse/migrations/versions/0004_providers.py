"""Providers: the watch list's provider of each ticker, and why a fallback source served a
ticker-day.

Revision ID: 0004_providers
Revises: 0003_calendar_overrides
Create Date: 2026-12-01

Both columns are new and NULL for what is stored: every ticker keeps the routing rule
(CANDLE_SOURCE, or the crypto provider for a crypto pair) and every stored ticker-day was served
by its own provider.
"""

import sqlalchemy as sa
from alembic import context, op

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0004_providers"
down_revision = "0003_calendar_overrides"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes[SCHEMA_ATTRIBUTE]


def upgrade() -> None:
    schema = _schema()
    op.add_column("watchlist", sa.Column("provider", sa.Text), schema=schema)
    op.add_column("ticker_days", sa.Column("fallback_reason", sa.Text), schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_column("ticker_days", "fallback_reason", schema=schema)
    op.drop_column("watchlist", "provider", schema=schema)
