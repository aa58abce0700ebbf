"""The schedules evaluated at pinned moments against a real watch list and Dagster instance, and
the runs they ask for executed for real on the bundled sample.

Exchange sessions, holidays, early closes and time zones come from the real calendars
(exchange_calendars); the watch list from the warehouse CANDLE_DATABASE_URL names, as in a
deployment.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE, FAILED
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.schedules import (
    CATCHUP_TAG,
    EXCHANGE_TAG,
    SESSION_TAG,
    build_schedules,
    watchlist_listings,
)
from candle_pipeline.settings import (
    ENV_DATABASE_URL,
    OperationsSettings,
    SettingsError,
    get_settings,
)
from candle_pipeline_tests.conftest import (
    create_database,
    definitions_for,
    postgres_instance,
    table,
    watch,
)
from candle_pipeline_tests.run_requests import plan, provider_requests

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")
OPERATIONS = OperationsSettings.from_env({})
EXCHANGES = ("XNYS", "XNAS", "XTKS", "XLON")
RAW = dg.AssetKey("raw_quotes")
# The code location's warehouse: the one CANDLE_DATABASE_URL names when the tick runs.
WAREHOUSE_FROM_ENV = {"warehouse": WarehouseResource(database_url=dg.EnvVar(ENV_DATABASE_URL))}


def schedules_for(
    exchanges: tuple[str, ...] = EXCHANGES, catchup_days: int = OPERATIONS.catchup_days
) -> dict[str, dg.ScheduleDefinition]:
    operations = dataclasses.replace(OPERATIONS, catchup_days=catchup_days)
    schedules = build_schedules(exchanges, watchlist_listings, operations)
    return {schedule.name: schedule for schedule in schedules}


SCHEDULES = schedules_for()


def tick(
    schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, at: datetime
) -> tuple[list[dg.RunRequest], str | None]:
    """The schedule's tick scheduled at `at`: its run requests and its skip message."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources=WAREHOUSE_FROM_ENV
    ) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or []), result.skip_message


@pytest.fixture(scope="module")
def instance(pg_server: LocalPostgres) -> Iterator[dg.DagsterInstance]:
    """One instance for the module: the schedules only read it."""
    with postgres_instance(pg_server) as shared:
        yield shared


@pytest.fixture(scope="module")
def listed(pg_server: LocalPostgres) -> Iterator[str]:
    """A watch list on four exchanges, with one removed ticker, named by CANDLE_DATABASE_URL."""
    url = create_database(pg_server, "warehouse")
    start = date(2024, 1, 2)
    watch(url, ["SPY", "IBM"], start, exchange="XNYS")
    watch(url, ["GE"], start, exchange="XNYS", removed_on=date(2024, 6, 3))
    watch(url, ["AAPL"], start, exchange="XNAS")
    watch(url, ["7203.T"], start)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_DATABASE_URL, url)
        yield url
    get_settings.cache_clear()


def test_one_schedule_per_exchange_at_the_close_plus_delay() -> None:
    assert sorted(SCHEDULES) == [
        "catchup_weekly",
        "intraday_refresh",
        "xlon_after_close",
        "xnas_after_close",
        "xnys_after_close",
        "xtks_after_close",
    ]
    expected = {
        "xnys_after_close": ("30 16 * * 1,2,3,4,5", "America/New_York"),
        "xtks_after_close": ("0 16 * * 1,2,3,4,5", "Asia/Tokyo"),
        "xlon_after_close": ("0 17 * * 1,2,3,4,5", "Europe/London"),
        "catchup_weekly": ("0 6 * * 6", "UTC"),
        "intraday_refresh": ("*/15 * * * *", "UTC"),
    }
    for name, (cron, zone) in expected.items():
        assert (SCHEDULES[name].cron_schedule, SCHEDULES[name].execution_timezone) == (cron, zone)
    for schedule in SCHEDULES.values():
        assert schedule.job_name == "market_data_job"
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


NYSE_TICKERS = ["IBM", "SPY"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("local_time", "expected", "skip"),
    [
        # A Wednesday: that session only, for the active tickers on XNYS (not GE, removed).
        ("2024-11-27T16:30", [("2024-11-27", "2024-11-27", NYSE_TICKERS)], None),
        # Thanksgiving: no session, no run.
        ("2024-11-28T16:30", [], "XNYS has no session on 2024-11-28"),
        # The early close after Thanksgiving, from the calendar: 13:00 New York, 18:00 UTC.
        (
            "2024-11-29T13:20",
            [],
            "XNYS's session of 2024-11-29 closes at 18:00 UTC; with the 30 min delay not "
            "before 18:30 UTC",
        ),
        # Its tick: the holiday joins the session's run (recorded closed, no provider call).
        ("2024-11-29T16:30", [("2024-11-28", "2024-11-29", NYSE_TICKERS)], None),
        # A Saturday (the cron skips weekends; evaluated anyway, it finds no session).
        ("2024-11-30T16:30", [], "XNYS has no session on 2024-11-30"),
        # A Monday: Saturday and Sunday join Monday's run.
        ("2024-12-02T16:30", [("2024-11-30", "2024-12-02", NYSE_TICKERS)], None),
        # Too early in winter (EST): the close plus the delay is 21:30 UTC.
        (
            "2024-12-02T16:10",
            [],
            "XNYS's session of 2024-12-02 closes at 21:00 UTC; with the 30 min delay not "
            "before 21:30 UTC",
        ),
        # Too early in summer (EDT): an hour earlier in UTC.
        (
            "2024-07-01T16:10",
            [],
            "XNYS's session of 2024-07-01 closes at 20:00 UTC; with the 30 min delay not "
            "before 20:30 UTC",
        ),
        # The Monday after clocks went forward (Sunday 2024-03-10): the weekend joins it.
        ("2024-03-11T16:30", [("2024-03-09", "2024-03-11", NYSE_TICKERS)], None),
        # Good Friday and the weekend join Easter Monday's run.
        ("2024-04-01T16:30", [("2024-03-29", "2024-04-01", NYSE_TICKERS)], None),
    ],
)
def test_the_nyse_after_close_schedule_at_pinned_times(
    instance: dg.DagsterInstance,
    listed: str,
    local_time: str,
    expected: list[tuple[str, str, list[str]]],
    skip: str | None,
) -> None:
    at = datetime.fromisoformat(local_time).replace(tzinfo=NEW_YORK)
    requests, skip_message = tick(SCHEDULES["xnys_after_close"], instance, at)
    assert plan(requests) == expected
    assert skip_message == skip
    for request in requests:
        assert request.tags[EXCHANGE_TAG] == "XNYS"
        assert request.tags[SESSION_TAG] == local_time[:10]
        assert request.run_key.startswith(f"XNYS:{local_time[:10]}:")
        assert request.run_config["ops"]["market_data"]["config"]["refetch"] is False


@pytest.mark.integration
def test_each_exchange_gets_its_own_tickers_on_its_own_calendar(
    instance: dg.DagsterInstance, listed: str
) -> None:
    # Thanksgiving in New York is a session in Tokyo (closing 15:30 there, ticking at 16:00).
    requests, _ = tick(
        SCHEDULES["xtks_after_close"], instance, datetime(2024, 11, 28, 16, 0, tzinfo=TOKYO)
    )
    assert plan(requests) == [("2024-11-28", "2024-11-28", ["7203.T"])]
    requests, _ = tick(
        SCHEDULES["xnas_after_close"], instance, datetime(2024, 11, 27, 16, 30, tzinfo=NEW_YORK)
    )
    assert plan(requests) == [("2024-11-27", "2024-11-27", ["AAPL"])]
    requests, skip = tick(
        SCHEDULES["xlon_after_close"], instance, datetime(2024, 11, 27, 17, 0, tzinfo=LONDON)
    )
    assert requests == []
    assert skip == "XLON closed 2024-11-27, but no active ticker trades on XLON"


@pytest.mark.integration
def test_the_same_tick_twice_asks_for_the_same_runs(
    instance: dg.DagsterInstance, listed: str, days_per_run: Callable[[int], None]
) -> None:
    """A schedule's run keys name the exchange and session: Dagster launches them once."""
    days_per_run(5)
    monday = datetime(2024, 12, 2, 16, 30, tzinfo=NEW_YORK)
    first, _ = tick(SCHEDULES["xnys_after_close"], instance, monday)
    again, _ = tick(SCHEDULES["xnys_after_close"], instance, monday)
    assert [r.run_key for r in first] == [r.run_key for r in again]
    saturday = datetime(2024, 12, 7, 6, 0, tzinfo=UTC)
    first, _ = tick(SCHEDULES["catchup_weekly"], instance, saturday)
    again, _ = tick(SCHEDULES["catchup_weekly"], instance, saturday)
    assert len(first) == 3
    assert [r.run_key for r in first] == [r.run_key for r in again]


@pytest.mark.integration
def test_catchup_asks_for_plain_day_ranges_of_the_last_days(
    instance: dg.DagsterInstance, listed: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(5)
    saturday = datetime(2024, 11, 30, 6, 0, tzinfo=UTC)
    requests, skip = tick(SCHEDULES["catchup_weekly"], instance, saturday)
    assert skip is None
    assert plan(requests) == [
        ("2024-11-16", "2024-11-20", []),
        ("2024-11-21", "2024-11-25", []),
        ("2024-11-26", "2024-11-29", []),
    ], "the 14 days before the tick, in runs of 5 days, for every ticker the days count"
    for request in requests:
        assert request.tags[CATCHUP_TAG] == "2024-11-30"
        assert request.run_config["ops"]["market_data"]["config"]["refetch"] is False

    short = schedules_for(catchup_days=3)["catchup_weekly"]
    requests, _ = tick(short, instance, saturday)
    assert plan(requests) == [("2024-11-27", "2024-11-29", [])]


@pytest.mark.integration
def test_catchup_does_not_reach_before_the_first_partition(
    instance: dg.DagsterInstance, listed: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(5)
    requests, _ = tick(
        SCHEDULES["catchup_weekly"], instance, datetime(2000, 1, 3, 6, 0, tzinfo=UTC)
    )
    assert plan(requests) == [("2000-01-01", "2000-01-02", [])]
    requests, skip = tick(
        SCHEDULES["catchup_weekly"], instance, datetime(2000, 1, 1, 6, 0, tzinfo=UTC)
    )
    assert requests == []
    assert skip == "no day in the catch-up window"


@pytest.mark.integration
def test_no_active_ticker_on_the_exchange_means_no_run(
    instance: dg.DagsterInstance, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch(warehouse_url, ["SPY"], date(2024, 1, 2), removed_on=date(2024, 6, 3))
    monkeypatch.setenv(ENV_DATABASE_URL, warehouse_url)
    requests, skip = tick(
        SCHEDULES["xnys_after_close"], instance, datetime(2024, 11, 27, 16, 30, tzinfo=NEW_YORK)
    )
    assert requests == []
    assert skip == "XNYS closed 2024-11-27, but no active ticker trades on XNYS"


@pytest.mark.integration
def test_listings_come_from_the_active_watch_list(listed: str) -> None:
    assert sorted(watchlist_listings(WarehouseResource(database_url=listed))) == [
        ("7203.T", "XTKS"),
        ("AAPL", "XNAS"),
        ("IBM", "XNYS"),
        ("SPY", "XNYS"),
    ], "GE, removed, is not scheduled"


def test_bad_operations_settings_are_named() -> None:
    with pytest.raises(SettingsError, match="CANDLE_CATCHUP_CRON='weekly' is not a cron"):
        OperationsSettings.from_env({"CANDLE_CATCHUP_CRON": "weekly"})
    with pytest.raises(SettingsError, match="CANDLE_MARKET_API_POOL_LIMIT=0 must be at least 1"):
        OperationsSettings.from_env({"CANDLE_MARKET_API_POOL_LIMIT": "0"})
    with pytest.raises(SettingsError, match="CANDLE_SCHEDULE_DELAY_MINUTES='soon' is not a whole"):
        OperationsSettings.from_env({"CANDLE_SCHEDULE_DELAY_MINUTES": "soon"})


# --- the runs the schedules ask for, executed on the bundled sample --------------------------

SAMPLE_TICKERS = ["AIG", "BAC", "IBM", "SPY"]


def on_day(frame: pd.DataFrame, day: date) -> pd.DataFrame:
    return frame[frame["trade_date"] == day].reset_index(drop=True)


@pytest.mark.integration
def test_scheduled_runs_fill_the_warehouse_and_catchup_fills_the_gaps(
    pg_server: LocalPostgres,
    warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    days_per_run: Callable[[int], None],
) -> None:
    """The week of 2013-10-04 on XNYS: Monday's and Wednesday's after-close runs happen (IBM's
    Wednesday file is broken), Friday's before them and Tuesday's did not; Saturday's catch-up
    fetches exactly what is missing."""
    days_per_run(5)
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR / "lean-minute", csv_dir / "lean-minute")
    ibm_wednesday = csv_dir / "lean-minute" / "IBM" / "2013-10-09.csv"
    ibm_wednesday.write_text("this is not a csv of bars\n")
    watch(warehouse_url, SAMPLE_TICKERS, date(2013, 10, 4), exchange="XNYS")
    monkeypatch.setenv(ENV_DATABASE_URL, warehouse_url)
    job = definitions_for(warehouse_url, csv_dir).resolve_job_def("market_data_job")
    schedules = schedules_for(("XNYS",), catchup_days=8)

    with postgres_instance(pg_server) as instance:

        def execute(requests: list[dg.RunRequest]) -> list[str]:
            run_ids = []
            for request in requests:
                result = job.execute_in_process(
                    instance=instance, run_config=request.run_config, tags=request.tags
                )
                assert result.success
                run_ids.append(result.run_id)
            return run_ids

        def statuses() -> dict[date, dict[str, str]]:
            states = table(warehouse_url, "ticker_days")
            return {
                day: dict(zip(group["ticker"], group["status"], strict=True))
                for day, group in states.groupby("trade_date")
            }

        monday, _ = tick(
            schedules["xnys_after_close"], instance, datetime(2013, 10, 7, 16, 30, tzinfo=NEW_YORK)
        )
        assert plan(monday) == [("2013-10-05", "2013-10-07", SAMPLE_TICKERS)]
        execute(monday)
        wednesday, _ = tick(
            schedules["xnys_after_close"], instance, datetime(2013, 10, 9, 16, 30, tzinfo=NEW_YORK)
        )
        assert plan(wednesday) == [("2013-10-09", "2013-10-09", SAMPLE_TICKERS)]
        execute(wednesday)
        every = dict.fromkeys(SAMPLE_TICKERS, COMPLETE)
        assert statuses() == {
            date(2013, 10, 5): dict.fromkeys(SAMPLE_TICKERS, CLOSED),
            date(2013, 10, 6): dict.fromkeys(SAMPLE_TICKERS, CLOSED),
            date(2013, 10, 7): every,
            date(2013, 10, 9): {**every, "IBM": FAILED},
        }, "IBM's broken file fails IBM's Wednesday only, not the run"
        monday_rows = on_day(table(warehouse_url, "candles"), date(2013, 10, 7))

        shutil.copy(SAMPLE_DATA_DIR / "lean-minute" / "IBM" / "2013-10-09.csv", ibm_wednesday)
        saturday = datetime(2013, 10, 12, 6, 0, tzinfo=UTC)
        catchup, _ = tick(schedules["catchup_weekly"], instance, saturday)
        assert plan(catchup) == [("2013-10-04", "2013-10-08", []), ("2013-10-09", "2013-10-11", [])]
        run_ids = execute(catchup)

        weekdays = [date(2013, 10, day) for day in (4, 7, 8, 9, 10, 11)]
        assert statuses() == {
            **{day: every for day in weekdays},
            date(2013, 10, 5): dict.fromkeys(SAMPLE_TICKERS, CLOSED),
            date(2013, 10, 6): dict.fromkeys(SAMPLE_TICKERS, CLOSED),
        }
        # Friday and Tuesday for the four tickers; IBM's Wednesday, Thursday and Friday for the
        # four: one file per ticker-day, none for the complete or closed ones.
        assert [provider_requests(instance, run_id) for run_id in run_ids] == [8, 9]
        candles = table(warehouse_url, "candles")
        pd.testing.assert_frame_equal(on_day(candles, date(2013, 10, 7)), monday_rows)
        assert set(candles["trade_date"]) == set(weekdays)
