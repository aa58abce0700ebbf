"""A writer killed with SIGKILL at random points leaves every partition old or new, never half."""

import random
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.reliability.writer import PARTITIONS, ROWS_PER_PARTITION

KILLS = 10
SEED = 20261124
GENERATIONS_PER_WRITER = 1_000
MAX_SECONDS_BEFORE_KILL = 2.0


def partition_states(url: str) -> dict[tuple, tuple[int, float, float]]:
    query = sa.text(
        "SELECT trade_date, ticker, count(*), min(close), max(close) "
        "FROM market.candles GROUP BY trade_date, ticker"
    )
    with engine_for(url).connect() as conn:
        return {(row[0], row[1]): (row[2], row[3], row[4]) for row in conn.execute(query)}


def test_sigkill_mid_write_never_leaves_half_a_partition(warehouse_url: str) -> None:
    rng = random.Random(SEED)
    generations_seen: set[float] = set()
    for kill in range(KILLS):
        first_generation = kill * GENERATIONS_PER_WRITER
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "candle_pipeline_tests.reliability.writer",
                warehouse_url,
                str(first_generation),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, MAX_SECONDS_BEFORE_KILL))
        writer.send_signal(signal.SIGKILL)
        writer.wait()

        states = partition_states(warehouse_url)
        assert set(states) == set(PARTITIONS), "no partition lost"
        for key, (rows, lowest, highest) in states.items():
            assert rows == ROWS_PER_PARTITION, f"{key} holds {rows} rows"
            assert lowest == highest, f"{key} mixes generations {lowest} and {highest}"
        closes = {lowest for _, lowest, _ in states.values()}
        assert len(closes) == 1, "one transaction writes all partitions of a run"
        [generation] = closes
        assert generation >= first_generation, "the writer's first commit survives"
        generations_seen.add(generation - first_generation)
    assert len(generations_seen) > 1, "kills landed at different points of the writing"
