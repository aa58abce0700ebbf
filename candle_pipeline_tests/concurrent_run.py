"""One run of `market_data` for some watched tickers (run config `tickers`) in its own process,
against a fake Yahoo: the load test starts several at once. `python -m
candle_pipeline_tests.concurrent_run DAGSTER_HOME WAREHOUSE_URL BASE_URL TICKERS START END
REQUESTS_PER_MINUTE BURST`."""

from __future__ import annotations

import os
import sys
from datetime import date

REQUEST_TIMEOUT_SECONDS = 60.0


def main(argv: list[str]) -> int:
    home, warehouse_url, base_url, tickers, start, end, per_minute, burst = argv
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg  # noqa: PLC0415 - after DAGSTER_HOME is set

    from candle_pipeline import runs  # noqa: PLC0415
    from candle_pipeline_tests.providers.fake_yahoo import yahoo_definitions  # noqa: PLC0415

    defs = yahoo_definitions(
        warehouse_url,
        base_url,
        requests_per_minute=float(per_minute),
        request_burst=int(burst),
        # A request cut by a client timeout is retried while the server still counts the first
        # one in flight: on a busy machine that looked like a third call through a pool of two.
        request_timeout_seconds=REQUEST_TIMEOUT_SECONDS,
    )
    with dg.DagsterInstance.get() as instance:
        outcomes = runs.materialize(
            defs,
            instance,
            date.fromisoformat(start),
            date.fromisoformat(end),
            select=runs.MARKET_DATA_ASSETS,
            tickers=tickers.split(","),
        )
    for outcome in outcomes:
        print(outcome.run_id, outcome.success, outcome.error or "")
    return 0 if outcomes and all(o.success for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
