"""`retry_sensor`: ticker-days the provider asked us to wait for (or refused, a few times) are
fetched again once the wait is over, so a rate-limited backfill finishes by itself.

Each tick reads the `retry_later` and `failed` ticker-days whose `retry_after` has passed and
requests runs of `market_data_job` over their days with `tickers` naming them (the other tickers
of those days are complete already or not named: no provider call for them). The run key holds
the latest update of those ticker-days: while a requested run has not changed them, the same
request is not made twice.
"""

from datetime import UTC, datetime

import dagster as dg

from candle_pipeline.jobs import market_data_job
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.runs import run_requests
from candle_pipeline.settings import RETRY_SENSOR_INTERVAL_SECONDS
from candle_pipeline.warehouse.ticker_days import due_retries

RETRY_TAG = "candle/retry"


@dg.sensor(
    name="retry_sensor",
    minimum_interval_seconds=RETRY_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=market_data_job,
    description="Fetches again the ticker-days marked retry_later or failed once their "
    "retry_after has passed.",
)
def retry_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    due = warehouse.run(lambda conn: due_retries(conn, datetime.now(UTC)))
    if due.empty:
        return dg.SensorResult(skip_reason="no ticker-day is due for a retry")
    tickers = sorted(set(due["ticker"]))
    latest = max(due["updated_at"]).isoformat()
    requests = run_requests(
        due["trade_date"].dt.date,
        key=f"retry:{latest}",
        tickers=tickers,
        tags={RETRY_TAG: str(len(due))},
    )
    context.log.info(
        f"{len(due)} ticker-day(s) of {len(tickers)} ticker(s) due for a retry: "
        f"{len(requests)} run(s) requested"
    )
    return dg.SensorResult(run_requests=requests)
