"""`retry_sensor`: ticker-days the provider asked us to wait for (or refused, a few times) are
fetched again once the wait is over, so a rate-limited backfill finishes by itself.

Each tick reads the `retry_later` and `failed` ticker-days whose `retry_after` has passed and
requests runs of `market_data_job` over their days with `tickers` naming them (the other tickers
of those days are complete already or not named: no provider call for them). The run key stands
for those ticker-days as last written: while a requested run has not changed them, the same
request is not made twice, and ticker-days that fall due later get a run of their own.
"""

import hashlib
import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from candle_pipeline.jobs import market_data_job
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.runs import WorkRequest, run_requests

RETRY_TAG = "candle/retry"
# How often the retry sensor looks for ticker-days whose wait for a retry is over.
RETRY_SENSOR_INTERVAL_SECONDS = 60
RUN_KEY_DIGEST_BYTES = 8


def _run_key(due: pd.DataFrame) -> str:
    """The same due ticker-days, written at the same moments: the same key."""
    text = json.dumps(
        sorted(
            (ticker, day.date().isoformat(), updated.isoformat())
            for ticker, day, updated in zip(
                due["ticker"], due["trade_date"], due["updated_at"], strict=True
            )
        )
    )
    digest = hashlib.blake2b(text.encode(), digest_size=RUN_KEY_DIGEST_BYTES).hexdigest()
    return f"retry:{digest}"


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
    due = warehouse.due_retries(datetime.now(UTC))
    if due.empty:
        return dg.SensorResult(skip_reason="no ticker-day is due for a retry")
    tickers = sorted(set(due["ticker"]))
    request = WorkRequest(
        tuple(due["trade_date"].dt.date), tickers=tuple(tickers), tags={RETRY_TAG: str(len(due))}
    )
    requests = run_requests(request, key=_run_key(due))
    context.log.info(
        f"{len(due)} ticker-day(s) of {len(tickers)} ticker(s) due for a retry: "
        f"{len(requests)} run(s) requested"
    )
    return dg.SensorResult(run_requests=requests)
