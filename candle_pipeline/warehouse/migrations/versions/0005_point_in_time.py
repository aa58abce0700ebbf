"""Point-in-time prices: a complete, dated history of corporate actions, the CRSP-style factor
table derived from it, and adjusted candles as SQL (a function as of a day, a view as of today).

Revision ID: 0005_point_in_time
Revises: 0004_providers
Create Date: 2026-12-01

Corporate actions gain their currency, the raw close before the ex-date (the reference of a
dividend's return factor) and the moment each was first seen (the stored fetch time for rows
already there). Yahoo's rows stored before raw prices were split-adjusted as of the day they
were fetched, and the splits after that day were never recorded, so they cannot be re-scaled
exactly: their ticker-days become `failed`, asked again the next time the day is materialised
(and by the retry sensor). Downgrading drops what this adds; refetched rows stay raw.
"""

import sqlalchemy as sa
from alembic import context, op
from psycopg import sql

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0005_point_in_time"
down_revision = "0004_providers"
branch_labels = None
depends_on = None

TABLES = ("corporate_actions", "adjustment_factors", "candles", "ticker_days")
FUNCTION = "candles_adjusted_as_of"
VIEW = "candles_adjusted"
YAHOO = "yahoo"
FAILED = "failed"
REFETCH = "stored split-adjusted before raw prices were kept: materialise the day again"

# Per bar, the cumulative factors of the first action after its trade date among those known on
# `as_of` (ex-date and first sighting on or before it), cumulated over the later ones: a
# single SELECT, so PostgreSQL inlines it and a caller's filters reach `candles`' indexes.
CREATE_FUNCTION = """
CREATE FUNCTION {function}(as_of date)
RETURNS TABLE (
    ticker text, trade_date date, "interval" text, ts timestamptz,
    open double precision, high double precision, low double precision,
    close double precision, volume double precision, bar_count integer,
    price_factor double precision, volume_factor double precision,
    return_factor double precision
)
LANGUAGE sql STABLE AS $$
    WITH known AS (
        SELECT f.ticker, f.ex_date,
               exp(sum(ln(f.split_ratio)) OVER later) AS price_factor,
               exp(sum(ln(f.split_ratio / f.dividend_factor)) OVER later) AS return_factor
        FROM {adjustment_factors} AS f
        WHERE f.known_on <= as_of
        WINDOW later AS (PARTITION BY f.ticker ORDER BY f.ex_date DESC)
    )
    SELECT c.ticker, c.trade_date, c.interval, c.ts, c.open, c.high, c.low, c.close,
           c.volume, c.bar_count,
           coalesce(k.price_factor, 1.0), coalesce(k.price_factor, 1.0),
           coalesce(k.return_factor, 1.0)
    FROM {candles} AS c
    LEFT JOIN LATERAL (
        SELECT known.price_factor, known.return_factor FROM known
        WHERE known.ticker = c.ticker AND known.ex_date > c.trade_date
        ORDER BY known.ex_date
        LIMIT 1
    ) AS k ON true
$$
"""

# Raw, split-adjusted (`split_*`) and total-return (`tr_*`) candles as of today.
CREATE_VIEW = """
CREATE VIEW {view} AS
SELECT ticker, trade_date, "interval", ts, open, high, low, close, volume, bar_count,
       open / price_factor AS split_open, high / price_factor AS split_high,
       low / price_factor AS split_low, close / price_factor AS split_close,
       volume * volume_factor AS split_volume,
       open / return_factor AS tr_open, high / return_factor AS tr_high,
       low / return_factor AS tr_low, close / return_factor AS tr_close,
       volume * volume_factor AS tr_volume,
       price_factor, volume_factor, return_factor
FROM {function}(current_date)
"""

MARK_YAHOO_FOR_REFETCH = """
UPDATE {ticker_days}
SET status = %(failed)s, last_error = %(refetch)s, updated_at = now()
WHERE source = %(yahoo)s
"""


def _schema() -> str:
    return context.config.attributes[SCHEMA_ATTRIBUTE]


def _execute(template: str, params: dict[str, str] | None = None) -> None:
    """`template` with `{name}` the warehouse's tables, function and view, on the migration's
    connection."""
    schema = _schema()
    statement = sql.SQL(template).format(
        **{name: sql.Identifier(schema, name) for name in TABLES},
        function=sql.Identifier(schema, FUNCTION),
        view=sql.Identifier(schema, VIEW),
    )
    connection = op.get_bind()
    text = statement.as_string(connection.connection.driver_connection)
    connection.exec_driver_sql(text, params)


def upgrade() -> None:
    schema = _schema()
    op.add_column("corporate_actions", sa.Column("currency", sa.Text), schema=schema)
    op.add_column(
        "corporate_actions",
        sa.Column("reference_close", sa.Float(precision=53)),
        schema=schema,
    )
    op.add_column(
        "corporate_actions", sa.Column("first_seen", sa.DateTime(timezone=True)), schema=schema
    )
    _execute("UPDATE {corporate_actions} SET first_seen = fetched_at")
    op.alter_column("corporate_actions", "first_seen", nullable=False, schema=schema)
    op.create_table(
        "adjustment_factors",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("ex_date", sa.Date, nullable=False),
        sa.Column("known_on", sa.Date, nullable=False),
        sa.Column("split_ratio", sa.Float(precision=53), nullable=False),
        sa.Column("dividend_factor", sa.Float(precision=53), nullable=False),
        sa.Column("price_factor", sa.Float(precision=53), nullable=False),
        sa.Column("volume_factor", sa.Float(precision=53), nullable=False),
        sa.Column("return_factor", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("ticker", "ex_date"),
        schema=schema,
    )
    _execute(CREATE_FUNCTION)
    _execute(CREATE_VIEW)
    _execute(MARK_YAHOO_FOR_REFETCH, {"failed": FAILED, "refetch": REFETCH, "yahoo": YAHOO})


def downgrade() -> None:
    schema = _schema()
    _execute("DROP VIEW {view}")
    _execute("DROP FUNCTION {function}(date)")
    op.drop_table("adjustment_factors", schema=schema)
    for column in ("first_seen", "reference_close", "currency"):
        op.drop_column("corporate_actions", column, schema=schema)
