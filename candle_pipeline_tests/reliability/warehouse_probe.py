"""What the warehouse holds of each ticker-day across its tables, and which table locks a
process's connections hold: the consistency checks of the reliability tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

Key = tuple[str, date]
# The tables the market_data step writes, in the order its unit of work writes them.
WRITTEN_TABLES = (
    "raw_quotes",
    "validated_quotes",
    "candles",
    "corporate_actions",
    "quality_reports",
    "ticker_days",
)


@dataclass(frozen=True)
class TickerDay:
    """One ticker-day as every table holds it."""

    status: str
    rows: int
    fetched_at: datetime | None
    run_id: str
    raw_rows: int
    raw_fetches: frozenset[datetime]
    validated_rows: int
    validated_fetches: frozenset[datetime]
    candles: int
    reports_of_run: int


class Probe:
    """An autocommit connection that watches the warehouse and the writers' connections."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        names = [f"market.{name}" for name in (*WRITTEN_TABLES, "market_timings")]
        keys = self.conn.execute(
            "SELECT name, hashtext(name) FROM unnest(%s::text[]) AS name", (names,)
        ).fetchall()
        # pg_locks shows a bigint advisory key as its high half (classid) and low half (objid).
        self.lock_keys = {
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF): name.split(".")[1] for name, key in keys
        }

    def close(self) -> None:
        self.conn.close()

    def locked_tables(self, application: str) -> tuple[str, ...]:
        """The tables whose writer lock `application`'s connections hold, in writing order."""
        records = self.conn.execute(
            "SELECT l.classid::bigint, l.objid::bigint FROM pg_locks AS l "
            "JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE a.application_name = %s AND a.datname = current_database() "
            "AND l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted",
            (application,),
        ).fetchall()
        locked = {self.lock_keys.get(tuple(record)) for record in records}
        return tuple(name for name in WRITTEN_TABLES if name in locked)

    def waiting(self, application: str) -> bool:
        """Whether one of `application`'s connections waits for a table's writer lock."""
        query = (
            "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE a.application_name = %s AND a.datname = current_database() "
            "AND l.locktype = 'advisory' AND NOT l.granted"
        )
        return self.conn.execute(query, (application,)).fetchone()[0] > 0

    def backends(self, application: str) -> int:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        return self.conn.execute(query, (application,)).fetchone()[0]

    def run_ids(self) -> set[str]:
        query = "SELECT DISTINCT run_id FROM market.ticker_days"
        return {row[0] for row in self.conn.execute(query)}

    def timings_version(self) -> int:
        """The transaction that last wrote market_timings (each run rewrites its days)."""
        query = "SELECT coalesce(max(xmin::text::bigint), 0) FROM market.market_timings"
        return self.conn.execute(query).fetchone()[0]

    def ticker_days(self) -> dict[Key, TickerDay]:
        """Every ticker-day any table holds, with what each table holds of it, from one snapshot
        of the warehouse."""
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with self.conn.transaction():
            return self._ticker_days()

    def _ticker_days(self) -> dict[Key, TickerDay]:
        def grouped(query: str) -> dict[Key, tuple]:
            return {(row[0], row[1]): tuple(row[2:]) for row in self.conn.execute(query)}

        states = grouped(
            "SELECT ticker, trade_date, status, rows, fetched_at, run_id FROM market.ticker_days"
        )
        bars = {
            name: grouped(
                "SELECT ticker, trade_date, count(*), array_agg(DISTINCT fetched_at) "
                f"FROM market.{name} GROUP BY ticker, trade_date"
            )
            for name in ("raw_quotes", "validated_quotes")
        }
        candles = grouped(
            "SELECT ticker, trade_date, count(*) FROM market.candles GROUP BY ticker, trade_date"
        )
        reports = grouped(
            "SELECT d.ticker, d.trade_date, count(*) FROM market.ticker_days AS d "
            "JOIN market.quality_reports AS q ON (q.ticker, q.trade_date, q.run_id) = "
            "(d.ticker, d.trade_date, d.run_id) GROUP BY d.ticker, d.trade_date"
        )
        stored = set(bars["raw_quotes"]) | set(bars["validated_quotes"]) | set(candles)
        assert stored <= set(states), f"rows without a state: {sorted(stored - set(states))[:3]}"
        result = {}
        for key, (status, rows, fetched_at, run_id) in states.items():
            raw_rows, raw_fetches = bars["raw_quotes"].get(key, (0, []))
            validated_rows, validated_fetches = bars["validated_quotes"].get(key, (0, []))
            result[key] = TickerDay(
                status=status,
                rows=rows,
                fetched_at=fetched_at,
                run_id=run_id,
                raw_rows=raw_rows,
                raw_fetches=frozenset(raw_fetches),
                validated_rows=validated_rows,
                validated_fetches=frozenset(validated_fetches),
                candles=candles.get(key, (0,))[0],
                reports_of_run=reports.get(key, (0,))[0],
            )
        return result

    def reports_per_run(self) -> dict[str, int]:
        query = "SELECT run_id, count(*) FROM market.quality_reports GROUP BY run_id"
        return dict(self.conn.execute(query).fetchall())


def assert_complete(key: Key, day: TickerDay, raw_rows: int, candles: int) -> None:
    """A ticker-day stored whole by one run, in every table."""
    assert day.status == "complete", (key, day)
    assert day.rows == day.raw_rows == day.validated_rows == raw_rows, (key, day)
    assert day.raw_fetches == day.validated_fetches == {day.fetched_at}, (
        f"{key}: raw and validated rows of one fetch, the one ticker_days records: {day}"
    )
    assert day.candles == candles, (key, day)
    assert day.reports_of_run == 1, f"{key}: the quality report of the run that stored it"
