"""The tables written from DataFrames against their pandera contracts, on a real PostgreSQL server
migrated to the current revision: every column in order with its SQL type and nullability, the
primary key, and frames read back typed exactly as the contracts say."""

from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa
import psycopg
import pytest

from candle_pipeline.domain.bars import KEY_COLUMNS, VALUE_COLUMNS
from candle_pipeline.domain.quality import FLAG_COLUMNS
from candle_pipeline.domain.schemas import (
    CandlesSchema,
    CorporateActionsSchema,
    MarketTimingsSchema,
    RawQuotesSchema,
    TickerDaysSchema,
    ValidatedQuotesSchema,
    pandas_dtypes,
)
from candle_pipeline.domain.sessions import market_timings
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import load_days, replace_partitions
from candle_pipeline.warehouse.tables import TABLES, TICKER_DAYS, PartitionedTable

pytestmark = pytest.mark.integration

CONTRACTS = {
    "raw_quotes": RawQuotesSchema,
    "validated_quotes": ValidatedQuotesSchema,
    "candles": CandlesSchema,
    "market_timings": MarketTimingsSchema,
    "corporate_actions": CorporateActionsSchema,
    "ticker_days": TickerDaysSchema,
}
SPECS: dict[str, PartitionedTable] = {**TABLES, "ticker_days": TICKER_DAYS}
# How information_schema names the type PostgreSQL stores each pandas dtype as: written out here
# on its own, so that a wrong mapping in tables.py cannot agree with itself.
POSTGRES_TYPES = {
    "object": "text",
    "datetime64[ns]": "date",
    "datetime64[ns, UTC]": "timestamp with time zone",
    "float64": "double precision",
    "int64": "integer",
    "bool": "boolean",
}
DAY = date(2013, 10, 7)


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    """A warehouse migrated by the shipped migrations."""
    resource = WarehouseResource(database_url=warehouse_url)
    resource.setup_for_execution(None)  # type: ignore[arg-type]
    return resource


def dtype_names(schema: pa.DataFrameSchema) -> dict[str, str]:
    return {
        name: str(pd.Series(dtype=dtype).dtype) for name, dtype in pandas_dtypes(schema).items()
    }


def expected_columns(schema: pa.DataFrameSchema) -> list[tuple[str, str, str]]:
    return [
        (name, POSTGRES_TYPES[dtype], "YES" if schema.columns[name].nullable else "NO")
        for name, dtype in dtype_names(schema).items()
    ]


@pytest.mark.parametrize("table", list(CONTRACTS))
def test_the_migrated_table_is_its_contract(warehouse: WarehouseResource, table: str) -> None:
    schema = CONTRACTS[table]
    with psycopg.connect(warehouse.database_url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (SPECS[table].table.schema, table),
        ).fetchall()
        primary_key = conn.execute(
            "SELECT k.column_name FROM information_schema.table_constraints AS c "
            "JOIN information_schema.key_column_usage AS k USING (constraint_schema, "
            "constraint_name) WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = %s "
            "AND c.table_name = %s ORDER BY k.ordinal_position",
            (SPECS[table].table.schema, table),
        ).fetchall()
    assert columns == expected_columns(schema)
    assert [name for (name,) in primary_key] == schema.unique


def bars() -> pd.DataFrame:
    """Two bars of SPY, the second with a missing close and no adjusted close."""
    return pd.DataFrame(
        {
            "ticker": ["SPY", "SPY"],
            "trade_date": pd.to_datetime([DAY, DAY]),
            "interval": ["1m", "1m"],
            "ts": pd.to_datetime(["2013-10-07 13:30", "2013-10-07 13:31"], utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "open": [168.5, 168.6],
            "high": [168.7, 168.8],
            "low": [168.4, 168.5],
            "close": [168.6, np.nan],
            "volume": [1200.0, 800.0],
            "source": ["csv", "csv"],
            "fetched_at": pd.to_datetime(["2026-11-30 22:00:00.123456"] * 2, utc=True).astype(
                "datetime64[ns, UTC]"
            ),
        }
    )


def utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True).astype("datetime64[ns, UTC]"))


def frames() -> dict[str, pd.DataFrame]:
    """A frame of each contract, as the pipeline writes them, with missing values where the
    contract allows them."""
    validated = bars().assign(
        session="regular",
        **dict.fromkeys(FLAG_COLUMNS, False),
        is_valid=[True, False],
    )
    validated["flag_missing"] = [False, True]
    candle = (
        bars().iloc[[0]].loc[:, [*KEY_COLUMNS, *VALUE_COLUMNS]].assign(interval="1d", bar_count=390)
    )
    actions = pd.DataFrame(
        {
            "ticker": ["SPY", "IBM"],
            "ex_date": pd.to_datetime([DAY, DAY]),
            "dividend": [0.85, np.nan],
            "split_ratio": [np.nan, 2.0],
            "source": ["csv", "csv"],
            "fetched_at": utc("2026-11-30 22:00", "2026-11-30 22:00"),
            "currency": ["USD", None],
            "reference_close": [168.2, np.nan],
            "first_seen": utc("2026-11-30 22:00:01", "2026-11-30 22:00:01"),
        }
    )
    states = pd.DataFrame(
        {
            "ticker": ["SPY", "IBM"],
            "trade_date": pd.to_datetime([DAY, DAY]),
            "exchange": ["XNYS", "XNYS"],
            "status": ["complete", "retry_later"],
            "attempts": [1, 2],
            "last_error": [None, "HTTP 429"],
            "retry_after": utc("NaT", "2026-11-30 23:00"),
            "quality_score": [0.97, np.nan],
            "rows": [390, 0],
            "spike_rows": [1, 0],
            "stale_rows": [0, 0],
            "gaps": [2, 0],
            "source": ["csv", None],
            "fetched_at": utc("2026-11-30 22:00", "NaT"),
            "updated_at": utc("2026-11-30 22:00", "2026-11-30 22:00"),
            "run_id": ["run-a", "run-b"],
            "fallback_reason": [None, None],
            "last_bar_at": utc("2013-10-07 19:59", "NaT"),
        }
    )
    return {
        "raw_quotes": bars().assign(adj_close=[150.25, np.nan]),
        "validated_quotes": validated,
        "candles": candle,
        "market_timings": market_timings(["XNYS", "XHKG"], DAY, DAY),
        "corporate_actions": actions,
        "ticker_days": states,
    }


@pytest.mark.parametrize("table", list(CONTRACTS))
def test_frames_read_back_are_typed_as_their_contract_says(
    warehouse: WarehouseResource, table: str
) -> None:
    schema, spec = CONTRACTS[table], SPECS[table]
    written = schema.validate(frames()[table])
    with warehouse.connection() as conn:
        replace_partitions(conn, spec, written.loc[:, list(spec.key_columns)], written)
        loaded = load_days(conn, spec, [DAY])
    schema.validate(loaded)
    assert list(loaded.columns) == list(schema.columns)
    assert {name: str(dtype) for name, dtype in loaded.dtypes.items()} == dtype_names(schema)
    expected = written.sort_values(spec.order_by).reset_index(drop=True)
    # A missing text is read back as NaN, pandas' own missing value, whatever the writer held.
    text = expected.select_dtypes(object).columns
    expected[text] = expected[text].where(expected[text].notna(), np.nan)
    pd.testing.assert_frame_equal(loaded, expected)
