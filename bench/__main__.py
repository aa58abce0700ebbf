"""`python -m bench [--quick] [--only SECTION ...]`: every figure with its baseline, one run."""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

from bench import aggregate, end_to_end, partition_space, provider_requests, storage, write
from bench.common import Report, load_average, machine_description, postgres_server, server_version
from bench.end_to_end import Scenario

SECTIONS = (
    "write",
    "aggregate",
    "storage",
    "end-to-end",
    "partition-space",
    "provider-requests",
)
YEAR = (date(2025, 1, 1), date(2025, 12, 31))
SINCE_2000 = (date(2000, 1, 3), date(2025, 12, 31))
MINUTE_START = date(2025, 1, 2)
SP500_PLUS_ETFS = 523
DAYS_PER_YEAR = 365
# The targets of the day-partition design (docs/benchmarks.md).
YEAR_TARGET_SECONDS = 120
SINCE_2000_TARGET_SECONDS = 600
SINCE_2000_TARGET_MIB = 4096
MINUTE_TARGET_SECONDS = 90
REPEAT_TARGET_SECONDS = 20
DAILY_UPDATE_TARGET_SECONDS = 30
# The date x ticker design's throughput, measured by this bench on 2026-11-24: 503 tickers x 20
# days of daily bars, and 50 tickers x 5 days of minute bars.
PREVIOUS_DAILY_RATE = 44.9
PREVIOUS_MINUTE_RATE = 18.4


def last_of_sessions(first: date, count: int) -> date:
    """The day of the `count`-th session of the default exchange from `first`."""
    from candle_pipeline.domain.sessions import market_timings  # noqa: PLC0415

    timings = market_timings(["XNYS"], first, first + timedelta(days=3 * count + 10))
    return timings[timings["is_open"]]["session_date"].dt.date.tolist()[count - 1]


def years_back(years: int) -> date:
    """The day `years` years before today: the partition spaces end today."""
    return date.today() - timedelta(days=DAYS_PER_YEAR * years)


FULL = {
    "write_rows": 1_000_000,
    "repeats": 3,
    "aggregate_tickers": 500,
    # Day partitions: 8 runs of 365 days, enough to extrapolate to the 26-year history.
    "storage_days": 8 * 365,
    "scenarios": [
        Scenario(
            "523 tickers x 2025, daily bars",
            SP500_PLUS_ETFS,
            *YEAR,
            "1d",
            YEAR_TARGET_SECONDS,
            PREVIOUS_DAILY_RATE,
            repeat_target_seconds=REPEAT_TARGET_SECONDS,
            daily_update_target_seconds=DAILY_UPDATE_TARGET_SECONDS,
        ),
        Scenario(
            "523 tickers x 2000-01-03..2025-12-31, daily bars",
            SP500_PLUS_ETFS,
            *SINCE_2000,
            "1d",
            SINCE_2000_TARGET_SECONDS,
            PREVIOUS_DAILY_RATE,
            memory_target_mib=SINCE_2000_TARGET_MIB,
        ),
        Scenario(
            "100 tickers x 20 sessions, minute bars",
            100,
            MINUTE_START,
            last_of_sessions(MINUTE_START, 20),
            "1m",
            MINUTE_TARGET_SECONDS,
            PREVIOUS_MINUTE_RATE,
        ),
    ],
    # The design's default start against the baseline's two years (millions of partitions
    # beyond that).
    "space": [
        ("days", SP500_PLUS_ETFS, date(2000, 1, 1)),
        ("date-x-ticker", SP500_PLUS_ETFS, years_back(2)),
    ],
}
QUICK = {
    "write_rows": 50_000,
    "repeats": 1,
    "aggregate_tickers": 100,
    "storage_days": 60,
    "scenarios": [
        Scenario(
            "50 tickers x June 2025, daily bars",
            50,
            date(2025, 6, 1),
            date(2025, 6, 30),
            "1d",
            YEAR_TARGET_SECONDS,
            PREVIOUS_DAILY_RATE,
            repeat_target_seconds=REPEAT_TARGET_SECONDS,
            daily_update_target_seconds=DAILY_UPDATE_TARGET_SECONDS,
        ),
        Scenario(
            "10 tickers x 2 sessions, minute bars",
            10,
            MINUTE_START,
            last_of_sessions(MINUTE_START, 2),
            "1m",
            MINUTE_TARGET_SECONDS,
            PREVIOUS_MINUTE_RATE,
        ),
    ],
    "space": [("days", 10, years_back(1)), ("date-x-ticker", 10, years_back(1))],
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    report = Report()
    print(f"machine: {machine_description()}")
    with postgres_server() as server:
        print(f"database: {server_version(server)} (embedded server settings, fsync on)")
        if "write" in args.only:
            write.run(server, report, sizes["write_rows"], sizes["repeats"])
        if "aggregate" in args.only:
            aggregate.run(report, sizes["aggregate_tickers"], sizes["repeats"])
        if "storage" in args.only:
            storage.run(server, report, sizes["storage_days"])
        if "end-to-end" in args.only:
            end_to_end.run(server, report, sizes["scenarios"])
        if "partition-space" in args.only:
            for design, ticker_count, start in sizes["space"]:
                partition_space.run(server, report, ticker_count, start, design)
            partition_space.compare(report)
        if "provider-requests" in args.only:
            provider_requests.run(server, report)
    print(f"\nload average at the end: {load_average()}")
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\n" + report.markdown())


if __name__ == "__main__":
    main()
