"""The warehouse resource on a real PostgreSQL: its repository methods, the exchanges its fields
put in use, and its one retry policy (a read waits for a server that comes back; `ping` does
not)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest
import sqlalchemy as sa

from candle_pipeline.domain.calendar_overrides import CLOSED, CalendarOverride
from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables
from candle_pipeline.warehouse import schema
from candle_pipeline.warehouse.watchlist import NewTicker, WatchedTicker
from candle_pipeline_tests.conftest import create_database

pytestmark = pytest.mark.integration

START = date(2013, 10, 7)
REMOVED_ON = date(2013, 10, 9)
CLOSED_DAY = date(2013, 10, 8)
START_MOMENT = datetime(2013, 10, 7, 12, tzinfo=UTC)
# Long enough for a read to find the server down; shorter than the retries' patience (~7 s).
DOWN_SECONDS = 1.5
RETRY_MESSAGE = "database connection lost"


class RefusedError(Exception):
    """What the acceptance check of a test raises."""


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    ensure_tables(warehouse_url)
    return WarehouseResource(
        database_url=warehouse_url, default_exchange="XNAS", extra_exchanges=["XTKS"]
    )


def test_tickers_without_an_exchange_trade_on_the_default_one(
    warehouse: WarehouseResource,
) -> None:
    added, watched = warehouse.add_tickers(
        [NewTicker("ibm"), NewTicker("SPY", exchange="XNYS")], START
    )
    assert added == ["IBM", "SPY"]
    assert {entry.ticker: entry.exchange for entry in watched} == {"IBM": "XNAS", "SPY": "XNYS"}
    assert warehouse.exchanges().mic_for("IBM") == "XNAS"
    assert warehouse.exchanges().mic_for("NOT.WATCHED") == "XNAS"
    assert warehouse.exchanges_in_use() == ["XNAS", "XNYS", "XTKS"], "default, listed, extra"


def test_a_refused_addition_keeps_nothing(warehouse: WarehouseResource) -> None:
    warehouse.add_tickers([NewTicker("SPY")], START)

    def refuse(watched: list[WatchedTicker]) -> None:
        assert sorted(entry.ticker for entry in watched) == ["IBM", "SPY"], "sees the addition"
        raise RefusedError

    with pytest.raises(RefusedError):
        warehouse.add_tickers([NewTicker("IBM")], START, accept=refuse)
    assert [entry.ticker for entry in warehouse.watchlist()] == ["SPY"]


def test_a_removed_ticker_stays_on_the_list_but_not_among_the_active(
    warehouse: WarehouseResource,
) -> None:
    warehouse.add_tickers([NewTicker("SPY"), NewTicker("IBM")], START)
    assert warehouse.remove_tickers(["ibm", "AAPL"], REMOVED_ON) == ["IBM"]
    assert [entry.ticker for entry in warehouse.watchlist(active_only=True)] == ["SPY"]
    [ibm] = [entry for entry in warehouse.watchlist() if entry.ticker == "IBM"]
    assert (ibm.active, ibm.removed_on) == (False, REMOVED_ON)


def test_a_provider_exchange_moves_a_defaulted_ticker_once(
    warehouse: WarehouseResource,
) -> None:
    warehouse.add_tickers([NewTicker("NVDA"), NewTicker("IBM", exchange="XNYS")], START)
    warehouse.record_provider_exchanges({"NVDA": "NYQ", "IBM": "NMS"})
    assert warehouse.correct_exchanges() == {"NVDA": ("XNAS", "XNYS")}
    assert warehouse.correct_exchanges() == {}, "moved already"
    assert warehouse.exchanges().mic_for("IBM") == "XNYS", "an exchange given on adding stays"


def test_calendar_corrections_are_recorded_read_and_removed(
    warehouse: WarehouseResource,
) -> None:
    closure = CalendarOverride("XNYS", CLOSED_DAY, CLOSED, None, "a storm", None)
    stored = warehouse.record_calendar_override(closure, "tester", START_MOMENT)
    assert [o.override for o in warehouse.calendar_overrides(["XNYS"], START, START)] == []
    assert [o.id for o in warehouse.calendar_overrides(["XNYS"], CLOSED_DAY, CLOSED_DAY)] == [
        stored.id
    ]
    frame = warehouse.calendar_overrides_frame(["XNYS"], START, REMOVED_ON)
    assert list(frame["session_date"].dt.date) == [CLOSED_DAY]
    listed = warehouse.calendar_override_listing("XNYS")
    assert list(listed.loc[listed["session_date"] == CLOSED_DAY, "reason"]) == ["a storm"]
    assert warehouse.stored_sessions([CLOSED_DAY]) == set(), "no market timings stored yet"
    assert warehouse.remove_calendar_overrides("XNYS", CLOSED_DAY, "tester", START_MOMENT) == [
        stored.id
    ]
    assert stored.id not in {o.id for o in warehouse.calendar_overrides()}
    [removed] = warehouse.calendar_overrides_by_ids([stored.id])
    assert removed.override == closure


def test_one_engine_per_process_and_database(warehouse_url: str) -> None:
    one = WarehouseResource(database_url=warehouse_url)
    other = WarehouseResource(database_url=warehouse_url, default_exchange="XLON")
    assert one.engine is other.engine


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A server of this test's own, since the test stops it."""
    with throwaway_server(prefix="candle-resource-") as server:
        yield server


def test_a_read_waits_for_the_server_and_a_ping_does_not(
    own_server: LocalPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = create_database(own_server, "warehouse")
    ensure_tables(url)
    warehouse = WarehouseResource(database_url=url)
    warehouse.add_tickers([NewTicker("SPY")], START)
    own_server.stop()
    with pytest.raises((psycopg.OperationalError, sa.exc.OperationalError)):
        warehouse.ping()
    assert RETRY_MESSAGE not in caplog.text, "a ping answers at once"

    back = threading.Timer(DOWN_SECONDS, own_server.start)
    back.start()
    try:
        with caplog.at_level(logging.WARNING):
            watched = warehouse.watchlist()
    finally:
        back.join()
    assert [entry.ticker for entry in watched] == ["SPY"]
    assert RETRY_MESSAGE in caplog.text, "the read was retried until the server came back"
    assert warehouse.ping().at_head
    assert warehouse.ping().head == schema.head_revisions()
