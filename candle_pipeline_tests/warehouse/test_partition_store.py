"""The partition store against a real PostgreSQL server: writes replace exactly the keys they
name (a day, a ticker-day), reads return rows of some keys or of whole days, bit for bit."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.bars import STORED_RAW_COLUMNS
from candle_pipeline.domain.candles import CANDLE_COLUMNS
from candle_pipeline.domain.corporate_actions import STORED_ACTION_COLUMNS
from candle_pipeline.domain.quality import VALIDATED_COLUMNS
from candle_pipeline.domain.sessions import TIMING_COLUMNS, market_timings
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import (
    PartitionWriteError,
    load_days,
    load_partitions,
    replace_partitions,
)
from candle_pipeline.warehouse.tables import TABLES, TICKER_DAYS

CANDLES = TABLES["candles"]
TIMINGS = TABLES["market_timings"]
ACTIONS = TABLES["corporate_actions"]


def test_every_table_matches_the_frames_written_to_it() -> None:
    frames = {
        "market_timings": TIMING_COLUMNS,
        "raw_quotes": STORED_RAW_COLUMNS,
        "validated_quotes": VALIDATED_COLUMNS,
        "candles": CANDLE_COLUMNS,
        "corporate_actions": STORED_ACTION_COLUMNS,
    }
    assert {name: tuple(spec.columns) for name, spec in TABLES.items()} == frames


def test_every_tables_key_holds_its_day_and_is_among_its_columns() -> None:
    """What a write replaces: a day (market_timings) or a ticker-day (the rest); the behaviour
    is proved below per kind of key, and for every market-data table by test_backfill's
    rewrite of named tickers."""
    for spec in [*TABLES.values(), TICKER_DAYS]:
        assert set(spec.key_columns) <= set(spec.columns), spec.table.name
        assert spec.day_column in spec.key_columns, spec.table.name


def candles(ticker: str, day: str, close: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": [ticker],
            "trade_date": [pd.Timestamp(day)],
            "interval": ["1d"],
            "ts": [pd.Timestamp(f"{day} 13:30", tz="UTC")],
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [close],
            "volume": [100.0],
            "bar_count": [390],
        }
    )


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    resource = WarehouseResource(database_url=warehouse_url)
    resource.setup_for_execution(None)  # type: ignore[arg-type]
    return resource


def keys(*pairs: tuple[str, str]) -> list[tuple[date, str]]:
    return [(date.fromisoformat(day), ticker) for day, ticker in pairs]


def test_round_trip_and_replace_only_the_given_partitions(warehouse: WarehouseResource) -> None:
    everything = keys(("2013-10-07", "SPY"), ("2013-10-07", "IBM"), ("2013-10-08", "SPY"))
    frame = pd.concat(
        [
            candles("SPY", "2013-10-07", 1.0),
            candles("IBM", "2013-10-07", 2.0),
            candles("SPY", "2013-10-08", 3.0),
        ],
        ignore_index=True,
    )
    with warehouse.connection() as conn:
        assert replace_partitions(conn, CANDLES, everything, frame) == 3
        # A non-rectangular selection: SPY on the 7th and IBM on the 7th are not both touched.
        replace_partitions(
            conn, CANDLES, keys(("2013-10-07", "SPY")), candles("SPY", "2013-10-07", 9.0)
        )
        loaded = load_partitions(conn, CANDLES, everything)
    assert sorted(loaded["close"]) == [2.0, 3.0, 9.0]
    assert loaded.dtypes.to_dict() == frame.dtypes.to_dict()


def test_load_days_reads_every_ticker_of_the_days_and_nothing_else(
    warehouse: WarehouseResource,
) -> None:
    rows = {
        ("SPY", "2013-10-07"): 1.0,
        ("IBM", "2013-10-07"): 2.0,
        ("SPY", "2013-10-08"): 3.0,
        ("AIG", "2013-10-09"): 4.0,
    }
    frame = pd.concat(
        [candles(ticker, day, close) for (ticker, day), close in rows.items()], ignore_index=True
    )
    with warehouse.connection() as conn:
        replace_partitions(conn, CANDLES, keys(*[(d, t) for t, d in rows]), frame)
        days = load_days(conn, CANDLES, [date(2013, 10, 7), date(2013, 10, 9)])
        none = load_days(conn, CANDLES, [date(2013, 10, 10)])
    assert days[["ticker", "close"]].values.tolist() == [["AIG", 4.0], ["IBM", 2.0], ["SPY", 1.0]]
    assert none.empty
    assert none.dtypes.to_dict() == frame.dtypes.to_dict()


def test_a_day_keyed_table_is_replaced_a_day_at_a_time(warehouse: WarehouseResource) -> None:
    week = market_timings(["XNYS", "XLON"], date(2013, 10, 4), date(2013, 10, 8))
    monday = week[week["session_date"] == pd.Timestamp("2013-10-07")]
    with warehouse.connection() as conn:
        replace_partitions(conn, TIMINGS, [(d,) for d in week["session_date"].dt.date], week)
        # Monday again, for XNYS alone: XLON's Monday goes, since the day is the key.
        replace_partitions(conn, TIMINGS, [(date(2013, 10, 7),)], monday[monday["mic"] == "XNYS"])
        stored = load_days(conn, TIMINGS, [date(2013, 10, 4), date(2013, 10, 7)])
        whole = load_days(conn, TIMINGS, list(week["session_date"].dt.date.unique()))
    assert stored[["mic", "session_date"]].values.tolist() == [
        ["XLON", pd.Timestamp("2013-10-04")],
        ["XNYS", pd.Timestamp("2013-10-04")],
        ["XNYS", pd.Timestamp("2013-10-07")],
    ]
    assert len(whole) == len(week) - 1
    expected = week.sort_values(["mic", "session_date"]).reset_index(drop=True)
    kept = expected[~((expected["mic"] == "XLON") & (expected["session_date"] == "2013-10-07"))]
    pd.testing.assert_frame_equal(
        whole.sort_values(["mic", "session_date"]).reset_index(drop=True),
        kept.reset_index(drop=True),
    )


def actions(ticker: str, day: str, dividend: float) -> pd.DataFrame:
    seen = pd.Timestamp("2013-10-05", tz="UTC")
    return pd.DataFrame(
        {
            "ticker": [ticker],
            "ex_date": [pd.Timestamp(day)],
            "dividend": [dividend],
            "split_ratio": [float("nan")],
            "source": ["csv"],
            "fetched_at": [seen],
            "currency": ["USD"],
            "reference_close": [168.5],
            "first_seen": [seen],
        }
    )


def test_corporate_actions_are_replaced_a_ticker_and_ex_date_at_a_time(
    warehouse: WarehouseResource,
) -> None:
    both = keys(("2013-10-07", "SPY"), ("2013-10-07", "IBM"))
    frame = pd.concat(
        [actions("SPY", "2013-10-07", 0.5), actions("IBM", "2013-10-07", 0.9)], ignore_index=True
    )
    with warehouse.connection() as conn:
        replace_partitions(conn, ACTIONS, both, frame)
        replace_partitions(conn, ACTIONS, both[:1], actions("SPY", "2013-10-07", 0.6))
        stored = load_days(conn, ACTIONS, [date(2013, 10, 7)])
    assert stored[["ticker", "dividend"]].values.tolist() == [["IBM", 0.9], ["SPY", 0.6]]


def test_doubles_are_read_back_bit_for_bit(warehouse: WarehouseResource) -> None:
    """Prices as a provider's text parses them (264.67199999999997, not 264.672) and as float32
    feeds widen them (18.881999969482422), and doubles of every magnitude, survive a round trip
    unchanged: no rounding to 15 digits on the way out."""
    generator = np.random.default_rng(20131007)
    awkward = np.concatenate(
        [
            [264.67199999999997, 18.881999969482422, 0.1 + 0.2, 1e-300, 2.0**53 + 2, 5e-324],
            generator.uniform(0, 1000, 200) * 10.0 ** generator.integers(-8, 9, 200),
        ]
    )
    frame = pd.concat([candles("SPY", "2013-10-07", 1.0)] * len(awkward), ignore_index=True).assign(
        ts=pd.Timestamp("2013-10-07 13:30", tz="UTC") + pd.to_timedelta(range(len(awkward)), "min"),
        close=awkward,
        open=awkward[::-1],
        volume=np.floor(awkward * 1e3),
    )
    with warehouse.connection() as conn:
        replace_partitions(conn, CANDLES, keys(("2013-10-07", "SPY")), frame)
        loaded = load_days(conn, CANDLES, [date(2013, 10, 7)])
    for column in ("close", "open", "volume"):
        assert loaded[column].to_numpy().view(np.int64).tolist() == (
            frame[column].to_numpy().view(np.int64).tolist()
        ), column
    assert loaded["close"].iloc[0] == 264.67199999999997
    assert loaded["close"].iloc[1] == 18.881999969482422


def test_rows_outside_the_partitions_are_refused_and_nothing_changes(
    warehouse: WarehouseResource,
) -> None:
    spy = keys(("2013-10-07", "SPY"))
    with warehouse.connection() as conn:
        replace_partitions(conn, CANDLES, spy, candles("SPY", "2013-10-07", 1.0))
        intruder = pd.concat([candles("SPY", "2013-10-07", 5.0), candles("IBM", "2013-10-07", 5.0)])
        with pytest.raises(PartitionWriteError, match="outside those being written"):
            replace_partitions(conn, CANDLES, spy, intruder)
        assert load_partitions(conn, CANDLES, spy)["close"].tolist() == [1.0]


def test_a_failing_copy_rolls_back_the_delete(warehouse: WarehouseResource) -> None:
    spy = keys(("2013-10-07", "SPY"))
    with warehouse.connection() as conn:
        replace_partitions(conn, CANDLES, spy, candles("SPY", "2013-10-07", 1.0))
        duplicated = pd.concat([candles("SPY", "2013-10-07", 5.0)] * 2)
        with pytest.raises(Exception, match="duplicate key"):
            replace_partitions(conn, CANDLES, spy, duplicated)
        conn.rollback()
        assert load_partitions(conn, CANDLES, spy)["close"].tolist() == [1.0]


def test_wrong_columns_are_refused(warehouse: WarehouseResource) -> None:
    with warehouse.connection() as conn, pytest.raises(PartitionWriteError, match="missing"):
        replace_partitions(
            conn,
            CANDLES,
            keys(("2013-10-07", "SPY")),
            candles("SPY", "2013-10-07", 1.0).drop(columns="volume"),
        )


def test_every_schema_table_and_column_name_is_a_plain_identifier() -> None:
    from candle_pipeline.database_settings import validate_identifier  # noqa: PLC0415
    from candle_pipeline.warehouse.tables import metadata  # noqa: PLC0415

    for table in metadata.tables.values():
        validate_identifier(table.schema, "schema")
        validate_identifier(table.name, "table")
        for column in table.columns:
            validate_identifier(column.name, "column")
