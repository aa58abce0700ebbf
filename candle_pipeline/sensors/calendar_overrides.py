"""`calendar_overrides_sensor`: a calendar correction recorded or removed takes effect by itself.

Each tick compares the corrections in force with those of the previous tick (its cursor: their
row ids). For each day whose corrections changed and whose market timings are stored, it
requests a run of `market_data_job` for that day: `market_timings` again and, for the tickers
on that exchange, a closure's ticker-days recorded `closed` (their rows stay) or a reopened day
fetched; after a late open or an early close, the stored raw quotes validated again (no
provider call). Complete ticker-days are never fetched again.
"""

import json

import dagster as dg

from candle_pipeline.domain.calendar_overrides import CalendarOverride, reevaluations
from candle_pipeline.domain.ticker_days import expected_ticker_days
from candle_pipeline.jobs import market_data_job
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.runs import WorkRequest, run_requests
from candle_pipeline.warehouse.watchlist import watch_frame

SENSOR_INTERVAL_SECONDS = 30
CALENDAR_TAG = "candle/calendar_corrections"
# Changes named one by one in a tick's log line.
LOGGED = 5
RECORDED = "recorded"
REMOVED = "removed"


def _changes(
    warehouse: WarehouseResource, cursor: str | None
) -> tuple[dict[str, CalendarOverride], list[int]]:
    """The corrections changed since the cursor's (label -> override), and the ids now in
    force."""
    before = set(json.loads(cursor)) if cursor else set()
    now = {stored.id: stored.override for stored in warehouse.calendar_overrides()}
    gone = warehouse.calendar_overrides_by_ids(before - now.keys())
    changed: dict[str, CalendarOverride] = {
        **{f"{row_id}:{RECORDED}": now[row_id] for row_id in sorted(now.keys() - before)},
        **{f"{stored.id}:{REMOVED}": stored.override for stored in gone},
    }
    return changed, sorted(now)


@dg.sensor(
    name="calendar_overrides_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=market_data_job,
    description="Materialises a day again when a calendar correction of it is recorded or "
    "removed: its market timings, and its ticker-days without refetching complete ones.",
)
def calendar_overrides_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    changed, in_force = _changes(warehouse, context.cursor)
    if not changed:
        return dg.SensorResult(
            skip_reason="no calendar correction changed", cursor=json.dumps(in_force)
        )
    watched = watch_frame(warehouse.watchlist())
    days = sorted({override.session_date for override in changed.values()})
    materialised = warehouse.stored_sessions(days)
    expected = expected_ticker_days(watched, days)
    requests = []
    for work in reevaluations(changed, expected, materialised):
        request = WorkRequest(
            (work.day,),
            assets=work.assets,
            tickers=work.tickers,
            tags={CALENDAR_TAG: work.changes},
        )
        requests.extend(run_requests(request, key=f"calendar:{work.changes}"))
    shown = ", ".join(f"{label} {o.describe()}" for label, o in list(changed.items())[:LOGGED])
    context.log.info(
        f"{len(changed)} calendar correction(s) changed ({shown}"
        f"{', ...' if len(changed) > LOGGED else ''}): {len(requests)} run(s) requested"
    )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(in_force))
