"""A process that rewrites the same candle partitions forever, each time with a new generation.

`python -m candle_pipeline_tests.reliability.writer URL FIRST_GENERATION` prints `ready` once its
first generation is committed; the tests kill it (SIGKILL) at random moments and check the table.
"""

import sys
from datetime import date

import numpy as np
import pandas as pd

from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES

TICKERS = ("AAA", "BBB", "CCC", "DDD")
DAYS = (date(2020, 1, 2), date(2020, 1, 3))
ROWS_PER_PARTITION = 5_000
PARTITIONS = [(day, ticker) for day in DAYS for ticker in TICKERS]


def generation_frame(generation: int) -> pd.DataFrame:
    """Every partition's rows, all carrying `generation` as their close."""
    frames = []
    for day, ticker in PARTITIONS:
        ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(ROWS_PER_PARTITION), unit="s")
        frames.append(
            pd.DataFrame(
                {
                    "ticker": ticker,
                    "trade_date": pd.Timestamp(day),
                    "interval": "1m",
                    "ts": ts,
                    "open": 1.0,
                    "high": 2.0,
                    "low": 0.5,
                    "close": float(generation),
                    "volume": 10.0,
                    "bar_count": 1,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main(url: str, first_generation: int) -> None:
    ensure_tables(url)
    warehouse = WarehouseResource(database_url=url)
    generation = first_generation
    with warehouse.connection() as conn:
        while True:
            replace_partitions(conn, TABLES["candles"], PARTITIONS, generation_frame(generation))
            if generation == first_generation:
                print("ready", flush=True)
            generation += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
