"""retry_sensor on a real warehouse and Dagster instance: which ticker-days it asks for again,
in which runs, under which run keys; with states written directly and left by real runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.domain.ticker_days import (
    BLOCKED,
    CLOSED,
    COMPLETE,
    FAILED,
    NO_DATA,
    RETRY_LATER,
    conform_states,
)
from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables
from candle_pipeline.sensors.retries import RETRY_TAG, retry_sensor
from candle_pipeline.warehouse.ticker_days import write_states
from candle_pipeline_tests.conftest import table, watch
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, Fault, yahoo_definitions
from candle_pipeline_tests.providers.yahoo_fixtures import fast_retry
from candle_pipeline_tests.run_requests import keys, plan

pytestmark = pytest.mark.integration

# When the states were written: fixed, so run keys are the same from one test run to the next.
WRITTEN = pd.Timestamp("2013-10-12 10:00", tz="UTC")
REWRITTEN = pd.Timestamp("2013-10-12 11:00", tz="UTC")
# retry_after values on either side of the moment a test ticks (the sensor reads the clock).
LONG_AGO = pd.Timestamp("2013-10-12 10:30", tz="UTC")
NEXT_CENTURY = pd.Timestamp("2113-10-12 10:30", tz="UTC")


def state(
    ticker: str,
    day: date,
    status: str,
    *,
    retry_after: pd.Timestamp | None = None,
    updated_at: pd.Timestamp = WRITTEN,
    attempts: int = 1,
) -> dict[str, object]:
    """One row of market.ticker_days."""
    complete = status == COMPLETE
    return {
        "ticker": ticker,
        "trade_date": pd.Timestamp(day),
        "exchange": "XNYS",
        "status": status,
        "attempts": attempts,
        "last_error": None if complete else f"{ticker} {status}",
        "retry_after": retry_after,
        "quality_score": 1.0 if complete else None,
        "rows": 390 if complete else 0,
        "spike_rows": 0,
        "stale_rows": 0,
        "gaps": 0,
        "source": "csv" if complete else None,
        "fetched_at": updated_at if complete else None,
        "last_bar_at": None,
        "updated_at": updated_at,
        "run_id": "an-earlier-run",
        "fallback_reason": None,
    }


def write(url: str, *rows: dict[str, object]) -> None:
    """Store `rows`, replacing those ticker-days' states, as a run's last write does."""
    ensure_tables(url)
    frame = conform_states(pd.DataFrame(list(rows)))
    WarehouseResource(database_url=url).run(lambda conn: write_states(conn, frame))


def tick(instance: dg.DagsterInstance, url: str) -> dg.SensorResult:
    """One evaluation of the sensor."""
    resources = {"warehouse": WarehouseResource(database_url=url)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return retry_sensor(context)


def days(first: int, last: int) -> list[date]:
    return [date(2013, 10, day) for day in range(first, last + 1)]


def test_nothing_due_is_a_skip(instance: dg.DagsterInstance, warehouse_url: str) -> None:
    ensure_tables(warehouse_url)
    empty = tick(instance, warehouse_url)
    assert empty.run_requests == []
    assert empty.skip_reason.skip_message == "no ticker-day is due for a retry"

    write(
        warehouse_url,
        state("SPY", date(2013, 10, 7), COMPLETE),
        state("SPY", date(2013, 10, 6), CLOSED),
        state("AIG", date(2013, 10, 7), BLOCKED),
        state("BAC", date(2013, 10, 7), NO_DATA),
        state("MSFT", date(2013, 10, 7), RETRY_LATER, retry_after=NEXT_CENTURY),
        state("ZZZZ", date(2013, 10, 7), FAILED, retry_after=NEXT_CENTURY),
        # Failed as many times as the provider gets asked: no retry_after, no more retries.
        state("XXXX", date(2013, 10, 7), FAILED, retry_after=None, attempts=5),
    )
    waiting = tick(instance, warehouse_url)
    assert waiting.run_requests == []
    assert waiting.skip_reason.skip_message == "no ticker-day is due for a retry"


def test_due_ticker_days_become_runs_of_their_tickers_over_their_days(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(3)
    write(
        warehouse_url,
        *(state("MSFT", day, RETRY_LATER, retry_after=LONG_AGO) for day in days(7, 10)),
        state("ZZZZ", date(2013, 10, 8), FAILED, retry_after=LONG_AGO),
        state("ZZZZ", date(2013, 10, 15), FAILED, retry_after=LONG_AGO),
        state("NVDA", date(2013, 10, 9), RETRY_LATER, retry_after=NEXT_CENTURY),
        state("SPY", date(2013, 10, 9), FAILED, retry_after=NEXT_CENTURY),
        state("IBM", date(2013, 10, 9), COMPLETE),
    )
    result = tick(instance, warehouse_url)
    assert plan(result) == [
        ("2013-10-07", "2013-10-09", ["MSFT", "ZZZZ"]),
        ("2013-10-10", "2013-10-10", ["MSFT", "ZZZZ"]),
        ("2013-10-15", "2013-10-15", ["MSFT", "ZZZZ"]),
    ], "runs of at most 3 consecutive days, naming the due tickers and no other"
    for request in result.run_requests:
        assert request.run_config["ops"]["market_data"]["config"]["refetch"] is False
        assert request.tags[RETRY_TAG] == "6"
    assert retry_sensor.job_name == "market_data_job"
    assert len(set(keys(result))) == 3


def test_the_same_state_twice_is_the_same_request_and_a_new_state_a_new_one(
    instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    write(
        warehouse_url,
        *(state("MSFT", day, RETRY_LATER, retry_after=LONG_AGO) for day in days(7, 8)),
    )
    first = tick(instance, warehouse_url)
    assert plan(first) == [("2013-10-07", "2013-10-08", ["MSFT"])]
    # Until a run changes these ticker-days, every tick asks for the run with the same key,
    # which Dagster launches once.
    assert keys(tick(instance, warehouse_url)) == keys(first)

    # The run was refused again: the same ticker-days, due again, are a new request.
    write(
        warehouse_url,
        *(
            state("MSFT", day, RETRY_LATER, retry_after=LONG_AGO, updated_at=REWRITTEN)
            for day in days(7, 8)
        ),
    )
    again = tick(instance, warehouse_url)
    assert plan(again) == plan(first)
    assert set(keys(again)).isdisjoint(keys(first))


def test_a_ticker_day_due_after_its_neighbour_is_asked_for_in_a_run_of_its_own(
    instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    """MSFT and ZZZZ failed in the same run; MSFT was due first and its retry completed it.
    ZZZZ, due now, must not get the run key of MSFT's retry: Dagster would never launch it."""
    monday = date(2013, 10, 7)
    write(
        warehouse_url,
        state("MSFT", monday, RETRY_LATER, retry_after=LONG_AGO),
        state("ZZZZ", monday, FAILED, retry_after=NEXT_CENTURY),
    )
    msft = tick(instance, warehouse_url)
    assert plan(msft) == [("2013-10-07", "2013-10-07", ["MSFT"])]

    write(warehouse_url, state("MSFT", monday, COMPLETE, updated_at=REWRITTEN, attempts=2))
    # Time passes: ZZZZ's retry_after is behind us now; nothing rewrote its row.
    write(warehouse_url, state("ZZZZ", monday, FAILED, retry_after=LONG_AGO))
    zzzz = tick(instance, warehouse_url)
    assert plan(zzzz) == [("2013-10-07", "2013-10-07", ["ZZZZ"])]
    assert set(keys(zzzz)).isdisjoint(keys(msft))


# --- states left by real runs against a local Yahoo stand-in --------------------------------

AROUND_SPLIT = (date(2021, 7, 19), date(2021, 7, 21))
RETRY_ATTEMPTS = 3


def statuses(url: str) -> dict[str, set[str]]:
    states = table(url, "ticker_days")
    return {ticker: set(group["status"]) for ticker, group in states.groupby("ticker")}


def test_retries_after_real_runs_ask_only_for_what_is_due_until_the_attempts_run_out(
    instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    """ZZZZ is unknown to the provider (404) and may be asked again at once; MSFT is rate
    limited for an hour (429, Retry-After 3600). NVDA is fine."""
    watch(warehouse_url, ["NVDA", "MSFT", "ZZZZ"], AROUND_SPLIT[0])
    with FakeYahoo() as yahoo:
        defs = yahoo_definitions(
            warehouse_url,
            yahoo.base_url,
            requests_per_minute=6000.0,
            retry=fast_retry(max_retry_after_seconds=1.0),
            failed_retry_first_wait_seconds=0.0,
            failed_retry_attempts=RETRY_ATTEMPTS,
        )
        yahoo.fail("MSFT", Fault(429, headers={"Retry-After": "3600"}))
        started = datetime.now(UTC)
        [outcome] = runs.materialize(defs, instance, *AROUND_SPLIT)
        assert outcome.success, outcome.error
        assert statuses(warehouse_url) == {
            "MSFT": {RETRY_LATER},
            "NVDA": {COMPLETE},
            "ZZZZ": {FAILED},
        }
        msft = table(warehouse_url, "ticker_days").query("ticker == 'MSFT'")
        assert (msft["retry_after"] >= pd.Timestamp(started + timedelta(seconds=3600))).all()

        job = defs.resolve_job_def("market_data_job")
        seen: list[str] = []
        for attempt in range(2, RETRY_ATTEMPTS + 1):
            result = tick(instance, warehouse_url)
            assert plan(result) == [("2021-07-19", "2021-07-21", ["ZZZZ"])], "MSFT waits"
            assert keys(tick(instance, warehouse_url)) == keys(result), "asked once"
            assert set(keys(result)).isdisjoint(seen), "each retry is a new run"
            seen.extend(keys(result))
            calls = {ticker: len(yahoo.chart_calls(ticker)) for ticker in ("NVDA", "MSFT")}
            [request] = result.run_requests
            retried = job.execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags
            )
            assert retried.success
            assert {t: len(yahoo.chart_calls(t)) for t in calls} == calls, "only ZZZZ asked"
            zzzz = table(warehouse_url, "ticker_days").query("ticker == 'ZZZZ'")
            assert set(zzzz["attempts"]) == {attempt}
            assert set(zzzz["status"]) == {FAILED}

        assert zzzz["retry_after"].isna().all(), f"{RETRY_ATTEMPTS} attempts: no more"
        done = tick(instance, warehouse_url)
        assert done.run_requests == []
        assert done.skip_reason.skip_message == "no ticker-day is due for a retry"
