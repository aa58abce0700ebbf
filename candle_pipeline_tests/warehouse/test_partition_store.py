"""The partition store against a real PostgreSQL server."""

from datetime import date

import pandas as pd
import pytest

from candle_pipeline.domain.bars import STORED_RAW_COLUMNS
from candle_pipeline.domain.candles import CANDLE_COLUMNS
from candle_pipeline.domain.corporate_actions import STORED_ACTION_COLUMNS
from candle_pipeline.domain.quality import VALIDATED_COLUMNS
from candle_pipeline.domain.sessions import TIMING_COLUMNS
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import (
    PartitionWriteError,
    load_partitions,
    replace_partitions,
)
from candle_pipeline.warehouse.tables import TABLES

CANDLES = TABLES["candles"]


def test_every_table_matches_the_frames_written_to_it() -> None:
    frames = {
        "market_timings": TIMING_COLUMNS,
        "raw_quotes": STORED_RAW_COLUMNS,
        "validated_quotes": VALIDATED_COLUMNS,
        "candles": CANDLE_COLUMNS,
        "corporate_actions": STORED_ACTION_COLUMNS,
    }
    assert {name: tuple(spec.columns) for name, spec in TABLES.items()} == frames


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
    from candle_pipeline.settings import validate_identifier  # noqa: PLC0415
    from candle_pipeline.warehouse.tables import metadata  # noqa: PLC0415

    for table in metadata.tables.values():
        validate_identifier(table.schema, "schema")
        validate_identifier(table.name, "table")
        for column in table.columns:
            validate_identifier(column.name, "column")
