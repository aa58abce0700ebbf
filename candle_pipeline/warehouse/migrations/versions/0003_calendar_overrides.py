"""Calendar corrections: closures, late opens and early closes laid over exchange_calendars, with
who recorded each, when, why and on whose word; and the corrections this release ships.

Revision ID: 0003_calendar_overrides
Revises: 0002_day_partitions
Create Date: 2026-12-01

A removed override keeps its row (`removed_at`, `removed_by`): the table is the history of every
correction, and what the calendar sensor compares to see what changed. The shipped corrections
are those the pinned exchange_calendars (4.13.2) lacks for the exchanges a Yahoo suffix maps to,
taken from the library's repository (merged pull requests and open issues since that release),
and the New York late opens pandas_market_calendars knows; the README lists them.
"""

from datetime import UTC, date, datetime, time

import sqlalchemy as sa
from alembic import context, op

from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = "0003_calendar_overrides"
down_revision = "0002_day_partitions"
branch_labels = None
depends_on = None

TABLE = "calendar_overrides"
SHIPPED_BY = "candle-pipeline (shipped correction)"
SHIPPED_AT = datetime(2026, 12, 1, tzinfo=UTC)
HKEX = "https://www.hkex.com.hk/News/Market-Communications/"
IDX_2026 = (
    "https://www.idx.co.id/StaticData/NewsAndAnnouncement/ANNOUNCEMENTSTOCK/Exchange/"
    "Peng-00171%20Libur%20Bursa%202026-No.%20Peng-00171BEI.POP09-2025.pdf"
)
CME_HOLIDAYS = "https://www.cmegroup.com/tools-information/holiday-calendar.html"
NYSE_CLOSINGS = (
    "https://github.com/rsheftel/pandas_market_calendars/files/6827110/Stocks.NYSE-Closings.pdf"
)
CSAT = "the national college entrance exam (CSAT): the market opens an hour late"
CME_JUNETEENTH = "Juneteenth: CME equity, interest-rate and FX products close at 12:00 CT"

# (mic, day, kind, local time, reason, source)
SHIPPED: tuple[tuple[str, date, str, time | None, str, str], ...] = (
    ("XHKG", date(2020, 8, 19), "late_open", time(13, 30),
     "trading resumed at 13:30 after Typhoon Signal No. 8 was cancelled",
     f"{HKEX}2020/2008192news?sc_lang=en"),
    ("XHKG", date(2021, 6, 28), "late_open", time(13, 30),
     "trading resumed at 13:30 after the Black Rainstorm Warning was cancelled",
     f"{HKEX}2021/2106283news?sc_lang=en"),
    ("XHKG", date(2023, 9, 1), "closed", None,
     "Typhoon Signal No. 8 (Saola): all trading sessions cancelled",
     f"{HKEX}2023/2309012news?sc_lang=en"),
    ("XHKG", date(2023, 9, 8), "closed", None,
     "Black Rainstorm Warning and extreme conditions: all trading sessions cancelled",
     f"{HKEX}2023/2309083news?sc_lang=en"),
    ("XIDX", date(2026, 1, 16), "closed", None, "Isra Mikraj", IDX_2026),
    ("XIDX", date(2026, 2, 16), "closed", None, "common leave for Chinese New Year", IDX_2026),
    ("XIDX", date(2026, 3, 18), "closed", None, "Nyepi, common leave", IDX_2026),
    ("XIDX", date(2026, 3, 19), "closed", None, "Nyepi (Hindu Saka New Year)", IDX_2026),
    ("XIDX", date(2026, 3, 20), "closed", None, "Eid al-Fitr", IDX_2026),
    ("XIDX", date(2026, 3, 23), "closed", None, "Eid al-Fitr, common leave", IDX_2026),
    ("XIDX", date(2026, 3, 24), "closed", None, "Eid al-Fitr, common leave", IDX_2026),
    ("XIDX", date(2026, 5, 15), "closed", None, "common leave for Ascension Day", IDX_2026),
    ("XIDX", date(2026, 5, 27), "closed", None, "Eid al-Adha", IDX_2026),
    ("XIDX", date(2026, 5, 28), "closed", None, "Eid al-Adha, common leave", IDX_2026),
    ("XIDX", date(2026, 6, 16), "closed", None, "Islamic New Year", IDX_2026),
    ("XIDX", date(2026, 8, 25), "closed", None, "Birth of the Prophet Muhammad", IDX_2026),
    ("XIDX", date(2026, 12, 24), "closed", None, "common leave for Christmas", IDX_2026),
    ("XKRX", date(2021, 11, 18), "late_open", time(10), CSAT,
     "https://www.hankyung.com/article/202111046888i"),
    ("XKRX", date(2022, 11, 17), "late_open", time(10), CSAT,
     "https://www.hankyung.com/article/202211174786Y"),
    ("XKRX", date(2023, 11, 16), "late_open", time(10), CSAT,
     "https://magazine.hankyung.com/business/article/202311159652b"),
    ("XKRX", date(2024, 11, 14), "late_open", time(10), CSAT,
     "https://www.hankyung.com/article/2024103126631"),
    ("XKRX", date(2025, 11, 13), "late_open", time(10), CSAT,
     "https://www.hankyung.com/article/2025111296366"),
    ("XKRX", date(2026, 6, 3), "closed", None, "local election day",
     "https://github.com/gerrymanoim/exchange_calendars/commit/7062399f48d9a7ee89c454b4273e3bebf8a4d01e"),
    ("CMES", date(2022, 6, 20), "early_close", time(12), CME_JUNETEENTH, CME_HOLIDAYS),
    ("CMES", date(2023, 6, 19), "early_close", time(12), CME_JUNETEENTH, CME_HOLIDAYS),
    ("CMES", date(2024, 6, 19), "early_close", time(12), CME_JUNETEENTH, CME_HOLIDAYS),
    ("CMES", date(2025, 6, 19), "early_close", time(12), CME_JUNETEENTH, CME_HOLIDAYS),
    ("CMES", date(2026, 6, 19), "early_close", time(12), CME_JUNETEENTH, CME_HOLIDAYS),
    ("XNYS", date(2001, 9, 17), "late_open", time(9, 33),
     "moment of silence for the victims of the 9/11 attacks", NYSE_CLOSINGS),
    ("XNYS", date(2001, 10, 8), "late_open", time(9, 31),
     "moment of silence for the Enduring Freedom troops", NYSE_CLOSINGS),
    ("XNYS", date(2002, 9, 11), "late_open", time(12), "first anniversary of 9/11",
     NYSE_CLOSINGS),
    ("XNYS", date(2003, 3, 20), "late_open", time(9, 32),
     "moment of silence for Operation Iraqi Freedom", NYSE_CLOSINGS),
    ("XNYS", date(2004, 6, 7), "late_open", time(9, 32),
     "moment of silence for former President Reagan", NYSE_CLOSINGS),
    ("XNYS", date(2005, 6, 1), "early_close", time(15, 56), "systems communication problem",
     NYSE_CLOSINGS),
    ("XNYS", date(2006, 12, 27), "late_open", time(9, 32),
     "moment of silence for former President Ford", NYSE_CLOSINGS),
)  # fmt: skip


def _schema() -> str:
    return context.config.attributes[SCHEMA_ATTRIBUTE]


def upgrade() -> None:
    schema = _schema()
    table = op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("mic", sa.Text, nullable=False),
        sa.Column("session_date", sa.Date, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
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
        sa.CheckConstraint(
            "(kind = 'closed') = (local_time IS NULL)", name="calendar_overrides_time"
        ),
        schema=schema,
    )
    op.create_index(
        "calendar_overrides_in_force",
        TABLE,
        ["mic", "session_date", "kind"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
        schema=schema,
    )
    op.bulk_insert(
        table,
        [
            {
                "mic": mic,
                "session_date": day,
                "kind": kind,
                "local_time": at,
                "reason": reason,
                "source": source,
                "recorded_by": SHIPPED_BY,
                "recorded_at": SHIPPED_AT,
            }
            for mic, day, kind, at, reason, source in SHIPPED
        ],
    )


def downgrade() -> None:
    op.drop_table(TABLE, schema=_schema())
