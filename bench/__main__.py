"""`python -m bench [--quick] [--only SECTION ...]`: every figure with its baseline, one run."""

from __future__ import annotations

import argparse
import time
from datetime import date

from bench import aggregate, end_to_end, floor, partition_space, storage, write
from bench.common import Report, load_average, machine_description, postgres_server, server_version
from bench.end_to_end import Scenario

SECTIONS = ("write", "aggregate", "floor", "storage", "end-to-end", "partition-space")
JANUARY = date(2024, 1, 2)
FULL = {
    "write_rows": 1_000_000,
    "repeats": 3,
    "aggregate_tickers": 500,
    "floor": (100, 10, 300),
    # Day partitions: 8 runs of 365 days, enough to extrapolate to the 26-year history.
    "storage_days": 8 * 365,
    "scenarios": [
        Scenario("503 tickers x 20 days, daily bars", 503, JANUARY, 20, "1d"),
        Scenario("50 tickers x 5 days, minute bars", 50, JANUARY, 5, "1m"),
    ],
    "space": (503, 5),
    "space_designs": ("calendar-days", "trading-days", "weeks"),
}
QUICK = {
    "write_rows": 50_000,
    "repeats": 1,
    "aggregate_tickers": 100,
    "floor": (20, 5, 60),
    "storage_days": 60,
    "scenarios": [
        Scenario("50 tickers x 5 days, daily bars", 50, JANUARY, 5, "1d"),
        Scenario("10 tickers x 2 days, minute bars", 10, JANUARY, 2, "1m"),
    ],
    "space": (10, 1),
    "space_designs": ("calendar-days",),
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
        if "floor" in args.only:
            floor.run(server, report, *sizes["floor"])
        if "storage" in args.only:
            storage.run(server, report, sizes["storage_days"])
        if "end-to-end" in args.only:
            end_to_end.run(server, report, sizes["scenarios"])
        if "partition-space" in args.only:
            for design in sizes["space_designs"]:
                partition_space.run(server, report, *sizes["space"], design)
    print(f"\nload average at the end: {load_average()}")
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\n" + report.markdown())


if __name__ == "__main__":
    main()
