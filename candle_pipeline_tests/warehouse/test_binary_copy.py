"""Binary COPY written by NumPy and CSV COPY read back: every type, NULLs, layouts and chunks."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.sessions import market_timings
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse import binary_copy, partition_store
from candle_pipeline.warehouse.binary_copy import BinaryCopyError
from candle_pipeline.warehouse.partition_store import load_partitions, replace_partitions
from candle_pipeline.warehouse.tables import TABLES

RAW = TABLES["raw_quotes"]
TIMINGS = TABLES["market_timings"]


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    resource = WarehouseResource(database_url=warehouse_url)
    resource.setup_for_execution(None)  # type: ignore[arg-type]
    return resource


def raw_rows(ticker: str, day: str, count: int, source: str = "csv") -> pd.DataFrame:
    ts = pd.Timestamp(f"{day} 14:30", tz="UTC") + pd.to_timedelta(np.arange(count), unit="min")
    prices = 100 + np.arange(count, dtype=float) / 7
    return pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": pd.Timestamp(day),
            "interval": "1m",
            "ts": ts,
            "open": prices,
            "high": prices + 0.5,
            "low": prices - 0.5,
            "close": prices + 0.25,
            "volume": np.arange(count, dtype=float) * 1000,
            "source": source,
            "fetched_at": pd.Timestamp("2024-05-06 07:08:09.123456", tz="UTC"),
            "adj_close": prices + 0.2,
        }
    ).astype(
        {
            "trade_date": "datetime64[ns]",
            "ts": "datetime64[ns, UTC]",
            "fetched_at": "datetime64[ns, UTC]",
        }
    )


def test_rows_of_every_layout_survive_a_round_trip_exactly(warehouse: WarehouseResource) -> None:
    """Tickers of four lengths, a UTF-8 source, missing prices: many binary layouts at once."""
    frame = pd.concat(
        [
            raw_rows("A", "2024-01-02", 50),
            raw_rows("BRK-B", "2024-01-02", 40, source="synthétique ✓"),
            raw_rows("IBM", "2024-01-03", 30),
            raw_rows("GOOGL", "2024-01-03", 20),
        ],
        ignore_index=True,
    )
    frame.loc[[3, 60, 95], "open"] = np.nan
    frame.loc[[4], ["high", "low", "close", "volume"]] = np.nan
    partitions = sorted({(row.trade_date.date(), row.ticker) for row in frame.itertuples()})
    with warehouse.connection() as conn:
        assert replace_partitions(conn, RAW, partitions, frame) == len(frame)
        loaded = load_partitions(conn, RAW, partitions)
    expected = frame.sort_values(["ticker", "interval", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected)
    assert loaded["open"].isna().sum() == 3


def test_market_timings_with_null_times_booleans_and_integers(warehouse: WarehouseResource) -> None:
    timings = market_timings(["XNYS", "XHKG"], date(2024, 3, 1), date(2024, 3, 4))
    partitions = [(day.date(),) for day in pd.to_datetime(timings["session_date"].unique())]
    with warehouse.connection() as conn:
        replace_partitions(conn, TIMINGS, partitions, timings)
        loaded = load_partitions(conn, TIMINGS, partitions)
    expected = timings.sort_values(["mic", "session_date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected.astype({"expected_minute_bars": "int64"}))
    assert loaded["break_start_utc"].notna().any(), "Hong Kong's lunch break made it through"
    assert loaded["open_utc"].isna().any(), "closed days keep their missing times"


def test_writes_larger_than_a_chunk_arrive_whole(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partition_store, "COPY_CHUNK_ROWS", 7)
    frame = pd.concat([raw_rows("SPY", "2024-01-02", 23), raw_rows("QQQ", "2024-01-02", 19)])
    partitions = [(date(2024, 1, 2), "SPY"), (date(2024, 1, 2), "QQQ")]
    with warehouse.connection() as conn:
        replace_partitions(conn, RAW, partitions, frame)
        loaded = load_partitions(conn, RAW, partitions)
    assert loaded.groupby("ticker").size().to_dict() == {"QQQ": 19, "SPY": 23}


def test_reading_partitions_that_hold_nothing_gives_a_typed_empty_frame(
    warehouse: WarehouseResource,
) -> None:
    with warehouse.connection() as conn:
        loaded = load_partitions(conn, RAW, [(date(2024, 1, 2), "NONE")])
    assert loaded.empty
    assert loaded.dtypes.to_dict() == raw_rows("A", "2024-01-02", 1).dtypes.to_dict()


def test_values_the_column_type_cannot_hold_are_refused_before_anything_is_sent() -> None:
    candles = TABLES["candles"].table
    frame = pd.DataFrame(
        {
            "ticker": ["SPY"],
            "trade_date": [pd.Timestamp("2024-01-02")],
            "interval": ["1d"],
            "ts": [pd.Timestamp("2024-01-02 14:30", tz="UTC")],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
            "bar_count": [2**31],
        }
    )
    with pytest.raises(BinaryCopyError, match="bar_count holds values beyond a 32-bit integer"):
        list(binary_copy.encode_rows(candles, frame))
    missing = frame.astype({"bar_count": "float64"}).assign(bar_count=np.nan)
    with pytest.raises(BinaryCopyError, match="bar_count has 1 missing value"):
        list(binary_copy.encode_rows(candles, missing))
    text_times = frame.assign(ts=["yesterday"])
    with pytest.raises(BinaryCopyError, match="column ts must hold timestamps"):
        list(binary_copy.encode_rows(candles, text_times))


def test_a_value_refused_mid_write_rolls_the_whole_write_back(
    warehouse: WarehouseResource,
) -> None:
    candles = TABLES["candles"]
    good = pd.DataFrame(
        {
            "ticker": ["SPY"],
            "trade_date": pd.to_datetime(["2024-01-02"]),
            "interval": ["1d"],
            "ts": pd.to_datetime(["2024-01-02 14:30"], utc=True),
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [1.5],
            "volume": [10.0],
            "bar_count": [390],
        }
    )
    partitions = [(date(2024, 1, 2), "SPY")]
    with warehouse.connection() as conn:
        replace_partitions(conn, candles, partitions, good)
        with pytest.raises(BinaryCopyError, match="32-bit"):
            replace_partitions(conn, candles, partitions, good.assign(bar_count=2**40))
        assert load_partitions(conn, candles, partitions)["bar_count"].tolist() == [390]
