"""First release: the tables, keys and indexes the release before migrations created.

Revision ID: 0001_first_release
Revises:
Create Date: 2026-12-01

A frozen snapshot of that release's `tables.py` (commit 402479d); a warehouse it made is stamped
at this revision instead of running it.
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0001_first_release"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (
    "market_timings",
    "raw_quotes",
    "validated_quotes",
    "candles",
    "corporate_actions",
    "provider_rate_limits",
    "watchlist",
    "quality_reports",
)
FLAG_NAMES = ("missing", "ohlc", "price", "volume", "outside_day", "spike", "stale")
BAR_KEY = ("ticker", "interval", "ts")


def _double(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Float(precision=53), nullable=nullable)


def _timestamp(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _bar_columns() -> list[sa.Column]:
    """The key and prices every table of bars starts with."""
    return [
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("trade_date", sa.Date, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        _timestamp("ts", nullable=False),
        *[_double(name) for name in ("open", "high", "low", "close", "volume")],
    ]


def _index_by_partition(table: str, schema: str) -> None:
    op.create_index(f"{table}_by_partition", table, ["ticker", "trade_date"], schema=schema)


def upgrade() -> None:
    schema: str = context.config.attributes[SCHEMA_ATTRIBUTE]
    op.create_table(
        "market_timings",
        sa.Column("mic", sa.Text, nullable=False),
        sa.Column("session_date", sa.Date, nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        _timestamp("open_utc"),
        _timestamp("close_utc"),
        _timestamp("break_start_utc"),
        _timestamp("break_end_utc"),
        sa.Column("early_close", sa.Boolean, nullable=False),
        sa.Column("expected_minute_bars", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("mic", "session_date"),
        schema=schema,
    )
    op.create_index("market_timings_by_date", "market_timings", ["session_date"], schema=schema)

    op.create_table(
        "raw_quotes",
        *_bar_columns(),
        sa.Column("source", sa.Text, nullable=False),
        _timestamp("fetched_at", nullable=False),
        _double("adj_close"),
        sa.PrimaryKeyConstraint(*BAR_KEY),
        schema=schema,
    )
    _index_by_partition("raw_quotes", schema)

    op.create_table(
        "validated_quotes",
        *_bar_columns(),
        sa.Column("source", sa.Text, nullable=False),
        _timestamp("fetched_at", nullable=False),
        sa.Column("session", sa.Text, nullable=False),
        *[sa.Column(f"flag_{name}", sa.Boolean, nullable=False) for name in FLAG_NAMES],
        sa.Column("is_valid", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint(*BAR_KEY),
        schema=schema,
    )
    _index_by_partition("validated_quotes", schema)

    op.create_table(
        "candles",
        *_bar_columns(),
        sa.Column("bar_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(*BAR_KEY),
        schema=schema,
    )
    _index_by_partition("candles", schema)

    op.create_table(
        "corporate_actions",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("ex_date", sa.Date, nullable=False),
        _double("dividend"),
        _double("split_ratio"),
        sa.Column("source", sa.Text, nullable=False),
        _timestamp("fetched_at", nullable=False),
        sa.PrimaryKeyConstraint("ticker", "ex_date"),
        schema=schema,
    )

    op.create_table(
        "provider_rate_limits",
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("state", postgresql.ARRAY(sa.BigInteger), nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
        schema=schema,
    )

    op.create_table(
        "watchlist",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("exchange", sa.Text, nullable=False),
        sa.Column("exchange_source", sa.Text),
        sa.Column("provider_exchange", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("history_start", sa.Date),
        sa.Column("name", sa.Text),
        _timestamp("added_at", nullable=False),
        sa.PrimaryKeyConstraint("ticker"),
        schema=schema,
    )

    counts = (
        "rows",
        "valid_rows",
        "regular_bars",
        "expected_bars",
        "usable_bars",
        "gaps",
        "gap_bars",
        "regular_spikes",
        *[f"{name}_rows" for name in FLAG_NAMES],
    )
    op.create_table(
        "quality_reports",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("trade_date", sa.Date, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        _timestamp("evaluated_at", nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        *[_double(name) for name in ("score", "completeness", "validity", "consistency")],
        _double("threshold", nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        *[sa.Column(name, sa.Integer, nullable=False) for name in counts],
        sa.PrimaryKeyConstraint("ticker", "trade_date", "run_id"),
        schema=schema,
    )
    op.create_index(
        "quality_reports_latest",
        "quality_reports",
        ["ticker", "trade_date", "evaluated_at"],
        schema=schema,
    )


def downgrade() -> None:
    schema: str = context.config.attributes[SCHEMA_ATTRIBUTE]
    for table in reversed(TABLES):
        op.drop_table(table, schema=schema)
