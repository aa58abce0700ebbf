"""Several runs at once, each in its own process: the `market_api` pool bounds the provider calls
in flight and the shared token bucket bounds the request rate, both measured at the fake Yahoo."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import MARKET_API_POOL, PROJECT_DIR
from candle_pipeline_tests.conftest import create_database
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, yahoo_definitions

pytestmark = pytest.mark.integration

POOL_LIMIT = 2
PER_MINUTE = 240.0
BURST = 1
LATENCY_SECONDS = 0.3
# Each run fetches its own block of tickers (blocks are contiguous in registration order).
BLOCKS = (("AAPL",), ("AMZN",), ("GOOG",))
DAY = date(2020, 1, 2)
# A token is taken before its request is sent; on a loaded machine the sending can lag by a
# scheduling slice, so two arrivals may come closer than their tokens were. Allow that much.
ARRIVAL_SLACK_SECONDS = 0.25
RUN_TIMEOUT_SECONDS = 300


def test_runs_at_once_respect_the_pool_and_the_rate(
    pg_server: LocalPostgres, tmp_path: Path
) -> None:
    warehouse_url = create_database(pg_server, "warehouse")
    home = tmp_path / "dagster_home"
    home.mkdir()
    dagster_url = create_database(pg_server, "dagster")
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_url}\ntelemetry:\n  enabled: false\n"
    )
    with FakeYahoo(latency_seconds=LATENCY_SECONDS) as yahoo:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.event_log_storage.set_concurrency_slots(MARKET_API_POOL, POOL_LIMIT)
            tickers = [ticker for block in BLOCKS for ticker in block]
            instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, tickers)
            defs = yahoo_definitions(warehouse_url, yahoo.base_url)
            timings = runs.materialize(defs, instance, [], DAY, DAY, select=["market_timings"])
            assert timings[0].success

        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "candle_pipeline_tests.concurrent_run",
                    str(home),
                    warehouse_url,
                    yahoo.base_url,
                    ",".join(block),
                    DAY.isoformat(),
                    DAY.isoformat(),
                    str(PER_MINUTE),
                    str(BURST),
                ],
                cwd=PROJECT_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for block in BLOCKS
        ]
        outputs = [worker.communicate(timeout=RUN_TIMEOUT_SECONDS)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * len(BLOCKS), outputs

    charts = [a for a in yahoo.arrivals if a.is_chart]
    assert sorted(a.symbol for a in charts) == sorted(tickers), "one bar request per ticker"
    assert yahoo.max_in_flight <= POOL_LIMIT

    arrivals = sorted(a.arrived for a in yahoo.arrivals)
    per_second = PER_MINUTE / 60
    for i, first in enumerate(arrivals):
        for j in range(i + 1, len(arrivals)):
            allowed = BURST + (arrivals[j] - first + ARRIVAL_SLACK_SECONDS) * per_second
            assert j - i + 1 <= allowed, f"{j - i + 1} requests in {arrivals[j] - first:.3f} s"

    with engine_for(warehouse_url).connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(DISTINCT ticker) FROM market.raw_quotes")
        ).scalar_one()
    assert stored == len(tickers)
    span = arrivals[-1] - arrivals[0]
    print(
        f"{len(arrivals)} requests in {span:.2f} s ({(len(arrivals) - 1) / span:.2f}/s, "
        f"limit {per_second:.2f}/s); at most {yahoo.max_in_flight} in flight (pool {POOL_LIMIT})"
    )
