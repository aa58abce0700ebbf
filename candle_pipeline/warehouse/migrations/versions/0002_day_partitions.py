"""Day partitions: the per-ticker-day state table, the watch list's removal day, and a view of
every watched ticker-day's coverage.

Revision ID: 0002_day_partitions
Revises: 0001_first_release
Create Date: 2026-12-01

The data already stored becomes state, in set-based statements (a warehouse may hold millions
of rows): every watched ticker gets its history start (its earliest stored day, else the day it
was added), an inactive one the day it stops counting (the day after its last stored day), and
every stored ticker-day a `ticker_days` row judged from its rows, candles and
latest quality report. Downgrading drops what this adds; filled history starts stay.
"""

import sqlalchemy as sa
from alembic import context, op
from psycopg import sql

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0002_day_partitions"
down_revision = "0001_first_release"
branch_labels = None
depends_on = None

VIEW = "ticker_day_coverage"
# The tables the statements below name.
TABLES = ("watchlist", "raw_quotes", "quality_reports", "candles", "market_timings", "ticker_days")
# What the previous release wrote, and what its ticker-days become.
REPORT_CLOSED = "market closed"
DEFAULT_EXCHANGE = "XNYS"
MIGRATION_RUN_ID = "migration"
UNFINISHED = "stored without candles before day partitions: materialise the day again"
# The new statuses a stored ticker-day can get; `failed` has rows but no candles yet.
STATUSES = ("complete", "blocked", "failed", "closed")

FILL_HISTORY_START = """
UPDATE {watchlist} AS w
SET history_start = coalesce(
    (SELECT min(r.trade_date) FROM {raw_quotes} AS r WHERE r.ticker = w.ticker),
    (w.added_at AT TIME ZONE 'UTC')::date
)
WHERE w.history_start IS NULL
"""

# A ticker the previous release kept inactive (for its history only) counted until its last
# stored day: it is removed from the day after, or from its history start if nothing is stored.
FILL_REMOVED_ON = """
UPDATE {watchlist} AS w
SET removed_on = coalesce(
    (SELECT max(r.trade_date) + 1 FROM {raw_quotes} AS r WHERE r.ticker = w.ticker),
    w.history_start
)
WHERE NOT w.active AND w.removed_on IS NULL
"""

# One row per stored ticker-day of raw_quotes, and one per ticker-day whose latest quality
# report found its market closed.
FILL_TICKER_DAYS = """
WITH stored AS (
    SELECT ticker, trade_date, count(*) AS rows, max(fetched_at) AS fetched_at,
           (array_agg(source ORDER BY fetched_at DESC))[1] AS source
    FROM {raw_quotes}
    GROUP BY ticker, trade_date
), latest AS (
    SELECT DISTINCT ON (ticker, trade_date)
           ticker, trade_date, run_id, status, score, threshold, passed,
           spike_rows, stale_rows, gaps
    FROM {quality_reports}
    ORDER BY ticker, trade_date, evaluated_at DESC, run_id DESC
), built AS (
    SELECT DISTINCT ticker, trade_date FROM {candles}
), days AS (
    SELECT ticker, trade_date FROM stored
    UNION
    SELECT ticker, trade_date FROM latest WHERE status = %(report_closed)s
), judged AS (
    SELECT d.ticker, d.trade_date, s.rows, s.source, s.fetched_at, r.run_id, r.score,
           r.threshold, r.spike_rows, r.stale_rows, r.gaps,
           CASE
               WHEN r.status = %(report_closed)s THEN %(closed)s
               WHEN NOT r.passed THEN %(blocked)s
               WHEN b.ticker IS NOT NULL THEN %(complete)s
               ELSE %(failed)s
           END AS status
    FROM days AS d
    LEFT JOIN stored AS s ON s.ticker = d.ticker AND s.trade_date = d.trade_date
    LEFT JOIN latest AS r ON r.ticker = d.ticker AND r.trade_date = d.trade_date
    LEFT JOIN built AS b ON b.ticker = d.ticker AND b.trade_date = d.trade_date
)
INSERT INTO {ticker_days} (
    ticker, trade_date, exchange, status, attempts, last_error, retry_after, quality_score,
    rows, spike_rows, stale_rows, gaps, source, fetched_at, updated_at, run_id
)
SELECT j.ticker, j.trade_date, coalesce(w.exchange, %(default_exchange)s), j.status,
       CASE WHEN j.status = %(closed)s THEN 0 ELSE 1 END,
       CASE
           WHEN j.status = %(blocked)s THEN format(
               'quality score %%s < threshold %%s', round(j.score::numeric, 4), j.threshold
           )
           WHEN j.status = %(failed)s THEN %(unfinished)s
       END,
       NULL, j.score, coalesce(j.rows, 0), coalesce(j.spike_rows, 0),
       coalesce(j.stale_rows, 0), coalesce(j.gaps, 0), j.source, j.fetched_at, now(),
       coalesce(j.run_id, %(migration_run_id)s)
FROM judged AS j
LEFT JOIN {watchlist} AS w ON w.ticker = j.ticker
"""

# Every open session of every watched ticker on the days whose market timings are stored, with
# its state; `not_fetched` when it has none.
CREATE_VIEW = """
CREATE VIEW {view} AS
SELECT w.ticker, w.exchange, t.session_date AS trade_date,
       coalesce(d.status, 'not_fetched') AS status, d.last_error, d.quality_score, d.retry_after
FROM {watchlist} AS w
JOIN {market_timings} AS t
  ON t.mic = w.exchange AND t.is_open AND t.session_date >= w.history_start
 AND (w.removed_on IS NULL OR t.session_date < w.removed_on)
LEFT JOIN {ticker_days} AS d ON d.ticker = w.ticker AND d.trade_date = t.session_date
"""


def _schema() -> str:
    return context.config.attributes[SCHEMA_ATTRIBUTE]


def _execute(template: str, params: dict[str, str] | None = None) -> None:
    """`template` with every `{name}` a table of the warehouse schema, run on the migration's
    connection."""
    schema = _schema()
    tables = {name: sql.Identifier(schema, name) for name in TABLES}
    statement = sql.SQL(template).format(**tables, view=sql.Identifier(schema, VIEW))
    connection = op.get_bind()
    text = statement.as_string(connection.connection.driver_connection)
    connection.exec_driver_sql(text, params)


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "ticker_days",
        sa.Column("ticker", sa.Text, nullable=False),
        sa.Column("trade_date", sa.Date, nullable=False),
        sa.Column("exchange", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("retry_after", sa.DateTime(timezone=True)),
        sa.Column("quality_score", sa.Float(precision=53)),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("spike_rows", sa.Integer, nullable=False),
        sa.Column("stale_rows", sa.Integer, nullable=False),
        sa.Column("gaps", sa.Integer, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("fetched_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("ticker", "trade_date"),
        schema=schema,
    )
    op.create_index("ticker_days_by_day", "ticker_days", ["trade_date"], schema=schema)
    op.create_index("ticker_days_due", "ticker_days", ["status", "retry_after"], schema=schema)
    op.add_column("watchlist", sa.Column("removed_on", sa.Date), schema=schema)

    _execute(FILL_HISTORY_START)
    _execute(FILL_REMOVED_ON)
    _execute(
        FILL_TICKER_DAYS,
        {
            **{status: status for status in STATUSES},
            "report_closed": REPORT_CLOSED,
            "default_exchange": DEFAULT_EXCHANGE,
            "unfinished": UNFINISHED,
            "migration_run_id": MIGRATION_RUN_ID,
        },
    )
    _execute(CREATE_VIEW)


def downgrade() -> None:
    schema = _schema()
    _execute("DROP VIEW {view}")
    op.drop_column("watchlist", "removed_on", schema=schema)
    op.drop_table("ticker_days", schema=schema)
