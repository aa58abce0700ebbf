"""`python -m bench.profile_end_to_end [--tickers N] [--days N]`: where a backfill's time goes.

Runs one end-to-end backfill of daily bars (as section 3 of the bench does) under `cProfile`,
writes the profile next to the working directory (`end_to_end.prof`) and prints the project's
functions and Dagster's event handling by cumulative time.
"""

from __future__ import annotations

import argparse
import json
import pstats
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from bench.common import create_database, postgres_server
from bench.end_to_end import (
    COMPLETED,
    REAL_MODULE,
    Result,
    Scenario,
    scenario_argument,
    scenario_environment,
)
from candle_pipeline.settings import PROJECT_DIR

FIRST_DAY = date(2024, 1, 1)
# Nothing but the backfill: no target is checked here.
NO_TARGET_SECONDS = float("inf")
PROFILE_FILE = Path("end_to_end.prof")
SHOWN = "|".join(
    (
        "candle_pipeline/(assets|resources|providers|io_managers|domain|checks|warehouse)",
        "handle_new_event",
        "store_asset_check_event",
        "backfill_driver.py:.*run",
    )
)
ROWS_SHOWN = 30


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_end_to_end", description=__doc__)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--days", type=int, default=31, help="calendar days")
    args = parser.parse_args()
    last_day = FIRST_DAY + timedelta(days=args.days - 1)
    scenario = Scenario("profile", args.tickers, FIRST_DAY, last_day, "1d", NO_TARGET_SECONDS)
    with postgres_server() as server:
        env = scenario_environment(server, scenario)
        command = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(PROFILE_FILE.resolve()),
            "-m",
            "bench.end_to_end",
            "--module",
            REAL_MODULE,
            "--dagster-url",
            create_database(server, "bench_profile_dagster"),
            "--scenario",
            scenario_argument(scenario),
        ]
        completed = subprocess.run(
            command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False
        )
    if completed.returncode != 0:
        raise SystemExit(f"the profiled backfill failed:\n{completed.stderr[-4000:]}")
    result = Result(**json.loads(completed.stdout.strip().splitlines()[-1]))
    if result.status != COMPLETED:
        raise SystemExit(f"the profiled backfill ended {result.status}: no profile")
    print(f"backfill: {result.seconds:.1f} s under the profiler, {result.runs} runs")
    stats = pstats.Stats(str(PROFILE_FILE))
    stats.sort_stats("cumulative").print_stats(SHOWN, ROWS_SHOWN)


if __name__ == "__main__":
    main()
