"""`python -m bench [--quick] [--only SECTION ...]`: every figure with its baseline, one run."""

from __future__ import annotations

import argparse
import time

from bench import write
from bench.common import Report, load_average, machine_description, postgres_server, server_version

SECTIONS = ("write",)
FULL = {"write_rows": 1_000_000, "repeats": 3}
QUICK = {"write_rows": 100_000, "repeats": 1}


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
    print(f"\nload average at the end: {load_average()}")
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\n" + report.markdown())


if __name__ == "__main__":
    main()
