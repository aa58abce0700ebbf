"""Weekly and monthly candles: one row per ticker, interval and period, its candle or why none.

Revision ID: 0007_periods
Revises: 0006_intraday
Create Date: 2026-12-01

`candles` is written partition-exactly per ticker-day, and a week or a month spans many day
partitions, so period candles get their own table keyed by the period. Existing warehouses start
with it empty: the periods of a day are judged the next time a run stores one of their days.
"""

import sqlalchemy as sa
from alembic import context, op

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0007_periods"
down_revision = "0006_intraday"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes[SCHEMA_ATTRIBUTE]
    op.create_table(
        "period_candles",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column("open", sa.Float(precision=53)),
        sa.Column("high", sa.Float(precision=53)),
        sa.Column("low", sa.Float(precision=53)),
        sa.Column("close", sa.Float(precision=53)),
        sa.Column("volume", sa.Float(precision=53)),
        sa.Column("sessions", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("ticker", "interval", "period_start"),
        schema=schema,
    )


def downgrade() -> None:
    schema = context.config.attributes[SCHEMA_ATTRIBUTE]
    op.drop_table("period_candles", schema=schema)
