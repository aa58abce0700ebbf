"""The warehouse tables in schema `market`, their keys, and how Dagster's day partitions map
onto them.

The tables written from DataFrames (raw quotes, validated quotes, candles, market timings, corporate
actions, ticker-days) are built from their pandera contracts (`domain/schemas.py`), the one place
their columns are written down. Tables are
made and changed by the migrations of `schema.py`, never by hand; a test proves they create exactly
what is described here. Primary keys make duplicate bars impossible; each table
names the columns a write replaces and the column of its day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandera.pandas as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from candle_pipeline.database_settings import warehouse_schema
from candle_pipeline.domain.bars import VALUE_COLUMNS
from candle_pipeline.domain.quality import FLAG_NAMES
from candle_pipeline.domain.schemas import (
    DAY,
    UTC_TIMESTAMP,
    CandlesSchema,
    CorporateActionsSchema,
    MarketTimingsSchema,
    RawQuotesSchema,
    TickerDaysSchema,
    ValidatedQuotesSchema,
    pandas_dtypes,
)

WAREHOUSE_SCHEMA = warehouse_schema()
metadata = sa.MetaData(schema=WAREHOUSE_SCHEMA)


# The SQL type of each pandas dtype of a pandera contract (`pandas_dtypes`): a naive timestamp is
# a calendar day, a timestamp with a time zone an instant, an integer a count that fits 32 bits.
SQL_TYPES: Mapping[object, sa.types.TypeEngine] = {
    object: sa.Text(),
    DAY: sa.Date(),
    str(UTC_TIMESTAMP): sa.DateTime(timezone=True),
    "float64": sa.Float(precision=53),
    "int64": sa.Integer(),
    "bool": sa.Boolean(),
}


def columns_of(schema: pa.DataFrameSchema) -> list[sa.Column]:
    """The columns of a table stored from frames of `schema`, in its order: the columns that
    identify a row (`unique`) are the primary key, and a column may hold NULL exactly where the
    contract allows a missing value."""
    return [
        sa.Column(
            name,
            SQL_TYPES[dtype],
            primary_key=name in schema.unique,
            nullable=schema.columns[name].nullable,
        )
        for name, dtype in pandas_dtypes(schema).items()
    ]


def _price_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.Float(precision=53)) for name in VALUE_COLUMNS]


market_timings = sa.Table(
    "market_timings",
    metadata,
    *columns_of(MarketTimingsSchema),
    sa.Index("market_timings_by_date", "session_date"),
)

raw_quotes = sa.Table(
    "raw_quotes",
    metadata,
    *columns_of(RawQuotesSchema),
    sa.Index("raw_quotes_by_partition", "ticker", "trade_date"),
)

validated_quotes = sa.Table(
    "validated_quotes",
    metadata,
    *columns_of(ValidatedQuotesSchema),
    sa.Index("validated_quotes_by_partition", "ticker", "trade_date"),
)

candles = sa.Table(
    "candles",
    metadata,
    *columns_of(CandlesSchema),
    sa.Index("candles_by_partition", "ticker", "trade_date"),
)

# Weekly and monthly candles (domain.periods), one row per ticker, interval and period: its
# candle when all its sessions are complete, else no prices and the days that stand in the way.
period_candles = sa.Table(
    "period_candles",
    metadata,
    sa.Column("ticker", sa.Text, primary_key=True),
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("period_start", sa.Date, primary_key=True),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True)),
    *_price_columns(),
    sa.Column("sessions", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
)

corporate_actions = sa.Table(
    "corporate_actions",
    metadata,
    *columns_of(CorporateActionsSchema),
)

# CRSP-style factors per ticker and ex-date, derived from `corporate_actions` by each run that
# stores actions of the ticker (domain.adjustments): the step of the action and the cumulative
# factors of the bars before it. Adjusted series are computed from them, never stored.
adjustment_factors = sa.Table(
    "adjustment_factors",
    metadata,
    sa.Column("ticker", sa.Text, primary_key=True),
    sa.Column("ex_date", sa.Date, primary_key=True),
    # The first day the action counts as of: the later of its ex-date and its first sighting.
    sa.Column("known_on", sa.Date, nullable=False),
    sa.Column("split_ratio", sa.Float(precision=53), nullable=False),
    sa.Column("dividend_factor", sa.Float(precision=53), nullable=False),
    sa.Column("price_factor", sa.Float(precision=53), nullable=False),
    sa.Column("volume_factor", sa.Float(precision=53), nullable=False),
    sa.Column("return_factor", sa.Float(precision=53), nullable=False),
)

# The token bucket of each market-data provider, shared by every process using this warehouse:
# pyrate-limiter's token-bucket state (one theoretical arrival time per rate, in microseconds).
provider_rate_limits = sa.Table(
    "provider_rate_limits",
    metadata,
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("state", postgresql.ARRAY(sa.BigInteger), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


# The tickers we follow; not an asset, managed by `candle-pipeline tickers`.
watchlist = sa.Table(
    "watchlist",
    metadata,
    sa.Column("ticker", sa.Text, primary_key=True),
    sa.Column("exchange", sa.Text, nullable=False),
    # listed (given when added), symbol (its suffix), provider (its metadata) or default.
    sa.Column("exchange_source", sa.Text),
    # The provider's own name of the exchange, as its last answer gave it (Yahoo's NMS, NYQ, ...).
    sa.Column("provider_exchange", sa.Text),
    sa.Column("active", sa.Boolean, nullable=False),
    # The ticker counts in the day partitions from this day (given, or the lookback when added)...
    sa.Column("history_start", sa.Date),
    # ... until the day before it was removed from the watch list (NULL: still watched).
    sa.Column("removed_on", sa.Date),
    # Refreshed during its session by the intraday schedule.
    sa.Column("intraday", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("name", sa.Text),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    # The market-data source that fetches the ticker (`tickers add --provider`); NULL: the rule
    # (a crypto pair to the crypto provider, anything else to CANDLE_SOURCE).
    sa.Column("provider", sa.Text),
)


# Calendar corrections laid over exchange_calendars (`domain/calendar_overrides.py`): one row per
# override ever recorded; a removed one keeps its row with `removed_at`. Not an asset, managed by
# `candle-pipeline calendar`.
calendar_overrides = sa.Table(
    "calendar_overrides",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("mic", sa.Text, nullable=False),
    sa.Column("session_date", sa.Date, nullable=False),
    # closed, late_open or early_close
    sa.Column("kind", sa.Text, nullable=False),
    # The exchange's local time of a late open or an early close (NULL for a closure).
    sa.Column("local_time", sa.Time),
    sa.Column("reason", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_by", sa.Text),
    sa.Column("removed_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "kind IN ('closed', 'late_open', 'early_close')", name="calendar_overrides_kind"
    ),
    sa.CheckConstraint("(kind = 'closed') = (local_time IS NULL)", name="calendar_overrides_time"),
    sa.Index(
        "calendar_overrides_in_force",
        "mic",
        "session_date",
        "kind",
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
    ),
)


@dataclass(frozen=True)
class PartitionedTable:
    """A table, the columns whose values name the rows one write replaces (a day, a ticker-day),
    and the column that places a row in a day partition."""

    table: sa.Table
    key_columns: tuple[str, ...]
    day_column: str

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def columns(self) -> list[str]:
        return [column.name for column in self.table.columns]

    @property
    def order_by(self) -> list[str]:
        return [column.name for column in self.table.primary_key.columns]


TICKER_DAY_KEY = ("trade_date", "ticker")

# Warehouse tables by the name of the asset stored in them.
TABLES: Mapping[str, PartitionedTable] = {
    "market_timings": PartitionedTable(market_timings, ("session_date",), "session_date"),
    "raw_quotes": PartitionedTable(raw_quotes, TICKER_DAY_KEY, "trade_date"),
    "validated_quotes": PartitionedTable(validated_quotes, TICKER_DAY_KEY, "trade_date"),
    "candles": PartitionedTable(candles, TICKER_DAY_KEY, "trade_date"),
    # Written next to the bars, for the same ticker-days (ex-date = the day).
    "corporate_actions": PartitionedTable(corporate_actions, ("ex_date", "ticker"), "ex_date"),
}
# Replaced per ticker, interval and period whenever a run judges the period again.
PERIOD_CANDLES = PartitionedTable(
    period_candles, ("ticker", "interval", "period_start"), "period_start"
)
# Rewritten whole per ticker whenever its actions are stored.
ADJUSTMENT_FACTORS = PartitionedTable(adjustment_factors, ("ticker",), "ex_date")


# One row per ticker-day and run of `validated_quotes`: the score, its components and what the
# rules found. `candles` reads the latest row of each ticker-day to decide whether it may be built.
quality_reports = sa.Table(
    "quality_reports",
    metadata,
    sa.Column("ticker", sa.Text, primary_key=True),
    sa.Column("trade_date", sa.Date, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("score", sa.Float(precision=53)),
    sa.Column("completeness", sa.Float(precision=53)),
    sa.Column("validity", sa.Float(precision=53)),
    sa.Column("consistency", sa.Float(precision=53)),
    sa.Column("threshold", sa.Float(precision=53), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("valid_rows", sa.Integer, nullable=False),
    sa.Column("regular_bars", sa.Integer, nullable=False),
    sa.Column("expected_bars", sa.Integer, nullable=False),
    sa.Column("usable_bars", sa.Integer, nullable=False),
    sa.Column("gaps", sa.Integer, nullable=False),
    sa.Column("gap_bars", sa.Integer, nullable=False),
    sa.Column("regular_spikes", sa.Integer, nullable=False),
    *[sa.Column(f"{name}_rows", sa.Integer, nullable=False) for name in FLAG_NAMES],
    sa.Index("quality_reports_latest", "ticker", "trade_date", "evaluated_at"),
)


# Per ticker and calendar day of its watch: where its data stands. The work queue of the day
# partitions: a run fetches the ticker-days that are not `complete` (or `closed`), and the retry
# sensor the `retry_later` ones whose `retry_after` has passed.
ticker_days = sa.Table(
    "ticker_days",
    metadata,
    *columns_of(TickerDaysSchema),
    sa.Index("ticker_days_by_day", "trade_date"),
    sa.Index("ticker_days_due", "status", "retry_after"),
)
TICKER_DAYS = PartitionedTable(ticker_days, TICKER_DAY_KEY, "trade_date")
