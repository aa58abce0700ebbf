"""Load: four runs of one day at once, each for one ticker (run config `tickers`), with the
`market_api` pool at 2 never have more than 2 provider calls in flight, and the request rate
stays within the shared token bucket; without the pool limit the same runs do overlap more (the
control that shows the test can see the difference)."""

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.pools import MARKET_API_POOL
from candle_pipeline.settings import PROJECT_DIR
from candle_pipeline_tests.conftest import create_database, table, watch
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, yahoo_definitions

RUNS = ("AAPL", "AMZN", "GOOG", "QQQ")
DAY = date(2020, 1, 2)
POOL_LIMIT = 2
# Slow answers make runs overlap, so only the pool can keep calls apart.
LATENCY_SECONDS = 1.0
PER_MINUTE = 120.0
BURST = 2
RUN_TIMEOUT_SECONDS = 300
# A token is taken just before its request is sent; allow one scheduling slice between the two.
ARRIVAL_SLACK_SECONDS = 0.25


def run_four_at_once(pg_server: LocalPostgres, tmp_path: Path, pool_limit: int | None) -> FakeYahoo:
    warehouse_url = create_database(pg_server, "warehouse")
    watch(warehouse_url, RUNS, DAY)
    home = tmp_path / "dagster_home"
    home.mkdir()
    dagster_url = create_database(pg_server, "dagster")
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_url}\ntelemetry:\n  enabled: false\n"
    )
    with FakeYahoo(latency_seconds=LATENCY_SECONDS) as yahoo:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            if pool_limit is not None:
                instance.event_log_storage.set_concurrency_slots(MARKET_API_POOL, pool_limit)
            defs = yahoo_definitions(warehouse_url, yahoo.base_url)
            [timings] = runs.materialize(defs, instance, DAY, DAY, select=["market_timings"])
            assert timings.success, timings.error
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "candle_pipeline_tests.concurrent_run",
                    str(home),
                    warehouse_url,
                    yahoo.base_url,
                    ticker,
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
            for ticker in RUNS
        ]
        outputs = [worker.communicate(timeout=RUN_TIMEOUT_SECONDS)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0] * len(RUNS), outputs
    states = table(warehouse_url, "ticker_days")
    assert sorted(states["ticker"]) == sorted(RUNS), "each run stored its ticker's day"
    assert set(states["status"]) == {"complete"}
    for ticker in RUNS:
        calls = len(yahoo.chart_calls(ticker))
        assert calls == 1 + 1, f"{ticker} was asked for its day once, then its later actions"
    return yahoo


def test_four_runs_share_two_slots_and_one_rate(pg_server: LocalPostgres, tmp_path: Path) -> None:
    yahoo = run_four_at_once(pg_server, tmp_path, POOL_LIMIT)
    assert yahoo.max_in_flight == POOL_LIMIT, "the pool is full at times, never exceeded"
    arrivals = sorted(a.arrived for a in yahoo.arrivals)
    per_second = PER_MINUTE / 60
    for i, first in enumerate(arrivals):
        for j in range(i + 1, len(arrivals)):
            allowed = BURST + (arrivals[j] - first + ARRIVAL_SLACK_SECONDS) * per_second
            assert j - i + 1 <= allowed, f"{j - i + 1} requests in {arrivals[j] - first:.3f} s"
    span = arrivals[-1] - arrivals[0]
    print(f"{len(arrivals)} requests in {span:.1f} s, at most {yahoo.max_in_flight} in flight")


def test_without_the_pool_limit_the_runs_overlap_more(
    pg_server: LocalPostgres, tmp_path: Path
) -> None:
    yahoo = run_four_at_once(pg_server, tmp_path, pool_limit=None)
    assert yahoo.max_in_flight > POOL_LIMIT
