"""Real `candle-pipeline materialize` runs in processes a test can kill, forked from one process
that has imported the command line and the project's definitions once.

`python -m candle_pipeline_tests.reliability.writer`, with the command line's environment
(CANDLE_DATABASE_URL, DAGSTER_HOME, CANDLE_SOURCE, ...), imports, prints `ready`, then reads
requests from stdin, one JSON object a line: {"args": [...], "loop": bool, "application": ...,
"log": path, "stacks": path}. For each it forks a writer and prints its process id. The writer
sets PGAPPNAME to `application` (so a test finds its connections in pg_stat_activity), sends its
output to `log`, writes the Python stack of each of its threads to `stacks` on SIGUSR1
(`faulthandler`, at the signal, whatever the thread is doing), and runs the command line's `args`
(`materialize ...`) once or, with `loop`, again and again until a run fails, then writes
`exit CODE` to its log. Nothing is connected or started before the fork; finished writers are
reaped by the system (SIGCHLD ignored).

Forking saves each writer the seconds of importing pandas and Dagster, so a test can kill many
runs quickly.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

READY = "ready"


def main() -> int:
    from candle_pipeline import cli  # noqa: PLC0415 - imported once, before the forks
    from candle_pipeline.definitions import defs  # noqa: PLC0415

    defs().resolve_implicit_global_asset_job_def()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print(READY, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_write(cli.main, request))
        print(pid, flush=True)
    return 0


def _write(run: Callable[[list[str]], int], request: dict[str, Any]) -> int:
    os.environ["PGAPPNAME"] = request["application"]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    stacks = open(request["stacks"], "w")  # noqa: SIM115 - open until the process ends
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    while True:
        code = run(request["args"])
        print(f"exit {code}", flush=True)
        if code != 0 or not request["loop"]:
            return code


if __name__ == "__main__":
    sys.exit(main())
