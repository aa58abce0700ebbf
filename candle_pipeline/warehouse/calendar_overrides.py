"""The calendar corrections in `market.calendar_overrides`: recording, removing and reading them.

Recording checks the override against the library's session and the overrides of the same day
under a table lock, so two users cannot record contradicting overrides at once. Removing keeps
the row (`removed_at`, `removed_by`): the table is the history of every correction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from candle_pipeline.domain.calendar_overrides import (
    CalendarOverride,
    check_override,
    overrides_frame,
)
from candle_pipeline.domain.sessions import regular_session
from candle_pipeline.warehouse.tables import calendar_overrides as table
from candle_pipeline.warehouse.tables import market_timings

LISTED_COLUMNS = ("mic", "session_date", "kind", "local_time", "reason", "source", "recorded_by")
# Serialises writers: a check and the insert it allows see the same overrides.
WRITE_LOCK = "SHARE ROW EXCLUSIVE"


@dataclass(frozen=True)
class StoredOverride:
    """An override as stored, with its row id."""

    id: int
    override: CalendarOverride


def _override(row: sa.Row) -> CalendarOverride:
    return CalendarOverride(
        mic=row.mic,
        session_date=row.session_date,
        kind=row.kind,
        at=row.local_time,
        reason=row.reason,
        source=row.source,
    )


def in_force(
    connection: sa.Connection,
    mics: Collection[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[StoredOverride]:
    """The overrides not removed, of `mics` (all when None) between `start` and `end`."""
    query = sa.select(table).where(table.c.removed_at.is_(None))
    if mics is not None:
        query = query.where(table.c.mic.in_(sorted(mics)))
    if start is not None:
        query = query.where(table.c.session_date >= start)
    if end is not None:
        query = query.where(table.c.session_date <= end)
    rows = connection.execute(query.order_by(table.c.mic, table.c.session_date, table.c.id))
    return [StoredOverride(row.id, _override(row)) for row in rows]


def in_force_frame(
    connection: sa.Connection, mics: Collection[str], start: date, end: date
) -> pd.DataFrame:
    """The overrides of `mics` between `start` and `end`, as `sessions.market_timings` takes
    them."""
    return overrides_frame(stored.override for stored in in_force(connection, mics, start, end))


def by_ids(connection: sa.Connection, ids: Iterable[int]) -> list[StoredOverride]:
    """The overrides with these row ids, removed or not."""
    rows = connection.execute(sa.select(table).where(table.c.id.in_(sorted(set(ids)))))
    return [StoredOverride(row.id, _override(row)) for row in rows]


def stored_sessions(connection: sa.Connection, days: Collection[date]) -> set[tuple[str, date]]:
    """The (mic, day) pairs of `days` whose market timings are stored: the sessions a changed
    correction of those days has to be materialised again for."""
    rows = connection.execute(
        sa.select(market_timings.c.mic, market_timings.c.session_date).where(
            market_timings.c.session_date.in_(sorted(days))
        )
    )
    return {(mic, day) for mic, day in rows}


def record(
    connection: sa.Connection, override: CalendarOverride, by: str, at: datetime
) -> StoredOverride:
    """Store `override` if it contradicts neither the library's session of its day nor the
    overrides in force that day (else `OverrideError`, nothing stored)."""
    connection.execute(sa.text(f"LOCK TABLE {_qualified(connection)} IN {WRITE_LOCK} MODE"))
    same_day = in_force(connection, [override.mic], override.session_date, override.session_date)
    check_override(
        override,
        regular_session(override.mic, override.session_date),
        [stored.override for stored in same_day],
    )
    row_id = connection.execute(
        sa.insert(table)
        .values(
            mic=override.mic,
            session_date=override.session_date,
            kind=override.kind,
            local_time=override.at,
            reason=override.reason,
            source=override.source,
            recorded_by=by,
            recorded_at=at,
        )
        .returning(table.c.id)
    ).scalar_one()
    return StoredOverride(row_id, override)


def remove(connection: sa.Connection, mic: str, day: date, by: str, at: datetime) -> list[int]:
    """Remove every override of `mic` on `day`; the ids removed (none: there was none)."""
    removed = connection.execute(
        sa.update(table)
        .where(table.c.mic == mic, table.c.session_date == day, table.c.removed_at.is_(None))
        .values(removed_by=by, removed_at=at)
        .returning(table.c.id)
    )
    return sorted(removed.scalars())


def listing(connection: sa.Connection, mic: str | None = None) -> pd.DataFrame:
    """The overrides in force (of `mic`), for `calendar list`."""
    query = sa.select(*(table.c[name] for name in LISTED_COLUMNS)).where(
        table.c.removed_at.is_(None)
    )
    if mic is not None:
        query = query.where(table.c.mic == mic)
    rows = connection.execute(query.order_by(table.c.mic, table.c.session_date, table.c.kind))
    return pd.DataFrame(rows.all(), columns=list(LISTED_COLUMNS))


def _qualified(connection: sa.Connection) -> str:
    """The table's schema-qualified name, quoted by the dialect."""
    preparer = connection.dialect.identifier_preparer
    return preparer.format_table(table)
