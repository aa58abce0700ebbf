"""Intraday: where a provisional ticker-day's bars stop, and which tickers are refreshed during
their session.

Revision ID: 0006_intraday
Revises: 0005_point_in_time
Create Date: 2026-12-01

`ticker_days.last_bar_at` is the start of the latest bar stored for a ticker-day (an intraday
refresh asks only for what follows it); `watchlist.intraday` marks the tickers the intraday
schedule refreshes. Existing rows get NULL and False: nothing is provisional yet.
"""

import sqlalchemy as sa
from alembic import context, op

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0006_intraday"
down_revision = "0005_point_in_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes[SCHEMA_ATTRIBUTE]
    op.add_column(
        "ticker_days", sa.Column("last_bar_at", sa.DateTime(timezone=True)), schema=schema
    )
    op.add_column(
        "watchlist",
        sa.Column("intraday", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=schema,
    )


def downgrade() -> None:
    schema = context.config.attributes[SCHEMA_ATTRIBUTE]
    op.drop_column("watchlist", "intraday", schema=schema)
    op.drop_column("ticker_days", "last_bar_at", schema=schema)
