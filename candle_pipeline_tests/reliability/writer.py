"""A real `candle-pipeline materialize --refetch` of the same days, again and again, until killed.

`python -m candle_pipeline_tests.reliability.writer START END STACK_FILE`, with the command
line's environment (CANDLE_DATABASE_URL, DAGSTER_HOME, CANDLE_SOURCE, ...), imports the command
line and the project's definitions, prints `ready`, waits for a line on stdin, then runs the
command line's `materialize --start START --end END --refetch` in a loop until a run fails, each
run rewriting every ticker-day of those days with a new fetch time.

Importing first (seconds of pandas and Dagster) lets a test start the next writer while it still
examines the last one, and time its kill from the start of the runs. On SIGUSR1 the writer
writes the Python stack of each of its threads to STACK_FILE (`faulthandler`, at the signal,
whatever the thread is doing), so a test can see where a kill landed.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

READY = "ready"


def main(argv: list[str]) -> int:
    start, end, stack_file = argv
    from candle_pipeline import cli  # noqa: PLC0415 - imported before `ready`
    from candle_pipeline.definitions import defs  # noqa: PLC0415

    defs.resolve_implicit_global_asset_job_def()
    with open(stack_file, "w") as stacks:
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
        print(READY, flush=True)
        sys.stdin.readline()
        while True:
            code = cli.main(["materialize", "--start", start, "--end", end, "--refetch"])
            print(f"exit {code}", flush=True)
            if code != 0:
                return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
