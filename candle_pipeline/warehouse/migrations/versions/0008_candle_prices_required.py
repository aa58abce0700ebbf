"""Candles always have prices: `open`, `high`, `low`, `close` and `volume` of `candles` NOT NULL.

Revision ID: 0008_candle_prices_required
Revises: 0007_periods
Create Date: 2026-12-01

The candles table is built from its pandera contract, which has always refused a candle without
prices, so no stored candle lacks one; the table now says so too.
"""

from alembic import context, op

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0008_candle_prices_required"
down_revision = "0007_periods"
branch_labels = None
depends_on = None

# As they were at this revision (a migration is history: it does not follow later renames).
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


def upgrade() -> None:
    _require_prices(required=True)


def downgrade() -> None:
    _require_prices(required=False)


def _require_prices(*, required: bool) -> None:
    schema = context.config.attributes[SCHEMA_ATTRIBUTE]
    for name in PRICE_COLUMNS:
        op.alter_column("candles", name, nullable=not required, schema=schema)
