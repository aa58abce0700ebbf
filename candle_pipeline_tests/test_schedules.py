"""Schedules evaluated at real dates against a real instance, and their runs executed for real."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from candle_pipeline.definitions import ASSETS
from candle_pipeline.domain.sessions import ExchangeDirectory
from candle_pipeline.jobs import JOBS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import TICKERS_PARTITION_NAME, ticker_day_partitions
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.runs import range_tags
from candle_pipeline.schedules import Listing, build_schedules, watchlist_listings
from candle_pipeline.settings import SAMPLE_DATA_DIR, OperationsSettings
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import create_database, postgres_instance, settings_for

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
OPERATIONS = OperationsSettings.from_env({})


def directory_listings(directory: ExchangeDirectory):
    """Registered tickers on the directory's exchanges (the watch list without a database)."""

    def listings(instance: dg.DagsterInstance) -> list[Listing]:
        registered = instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
        return [(ticker, directory.mic_for(ticker)) for ticker in registered]

    return listings


def schedules_for(
    directory: ExchangeDirectory, catchup_days: int = OPERATIONS.catchup_days
) -> dict[str, dg.ScheduleDefinition]:
    operations = dataclasses.replace(OPERATIONS, catchup_days=catchup_days)
    exchanges = {directory.default, *directory.by_ticker.values()}
    schedules = build_schedules(exchanges, directory_listings(directory), operations)
    return {schedule.name: schedule for schedule in schedules}


def tick(
    schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, at: datetime
) -> tuple[list[dg.RunRequest], str | None]:
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or []), result.skip_message


def ranges(requests: list[dg.RunRequest]) -> list[tuple[str, str]]:
    return [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ]


@pytest.fixture
def nyse_instance(pg_server: LocalPostgres) -> Iterator[dg.DagsterInstance]:
    with postgres_instance(pg_server) as instance:
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, ["SPY", "IBM", "AAPL"])
        yield instance


NYSE_DIRECTORY = ExchangeDirectory(default="XNYS", by_ticker={})
NYSE = schedules_for(NYSE_DIRECTORY)


def test_one_schedule_per_exchange_at_the_close_plus_delay() -> None:
    assert sorted(NYSE) == ["catchup_weekly", "market_timings_daily", "xnys_after_close"]
    after_close = NYSE["xnys_after_close"]
    assert after_close.cron_schedule == "30 16 * * 1,2,3,4,5"
    assert after_close.execution_timezone == "America/New_York"
    assert after_close.job_name == "ticker_days_job"
    assert after_close.default_status == dg.DefaultScheduleStatus.STOPPED
    tokyo = schedules_for(ExchangeDirectory(default="XNYS", by_ticker={"7203.T": "XTKS"}))
    assert tokyo["xtks_after_close"].cron_schedule == "0 16 * * 1,2,3,4,5"
    assert tokyo["xtks_after_close"].execution_timezone == "Asia/Tokyo"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("local_time", "expected", "skip"),
    [
        # A Wednesday: that session only.
        ("2024-11-27T16:30", [("2024-11-27|SPY", "2024-11-27|AAPL")], None),
        # Thanksgiving: no session, no run.
        ("2024-11-28T16:30", [], "XNYS has no session on 2024-11-28"),
        # The early close (13:00) after Thanksgiving: the holiday joins the session's run.
        ("2024-11-29T16:30", [("2024-11-28|SPY", "2024-11-29|AAPL")], None),
        # A Saturday (the cron skips weekends; evaluated anyway, it finds no session).
        ("2024-11-30T16:30", [], "XNYS has no session on 2024-11-30"),
        # A Monday: Saturday and Sunday join Monday's run.
        ("2024-12-02T16:30", [("2024-11-30|SPY", "2024-12-02|AAPL")], None),
        # Too early: the session has not closed plus the delay.
        ("2024-12-02T16:10", [], "not before 21:30 UTC"),
    ],
)
def test_after_close_schedule_at_real_dates(
    nyse_instance: dg.DagsterInstance,
    local_time: str,
    expected: list[tuple[str, str]],
    skip: str | None,
) -> None:
    at = datetime.fromisoformat(local_time).replace(tzinfo=NEW_YORK)
    requests, skip_message = tick(NYSE["xnys_after_close"], nyse_instance, at)
    assert ranges(requests) == expected
    if skip:
        assert skip in (skip_message or "")
    else:
        assert skip_message is None
        assert requests[0].tags["candle/exchange"] == "XNYS"
        assert requests[0].run_key.startswith(f"XNYS:{local_time[:10]}:")


@pytest.mark.integration
def test_exchanges_get_their_own_tickers_in_registration_blocks(
    nyse_instance: dg.DagsterInstance,
) -> None:
    nyse_instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, ["7203.T", "MSFT"])
    directory = ExchangeDirectory(default="XNYS", by_ticker={"7203.T": "XTKS"})
    schedules = schedules_for(directory)
    # Thanksgiving in New York is a session in Tokyo.
    tokyo_close = datetime(2024, 11, 28, 16, 0, tzinfo=TOKYO)
    requests, _ = tick(schedules["xtks_after_close"], nyse_instance, tokyo_close)
    assert ranges(requests) == [("2024-11-28|7203.T", "2024-11-28|7203.T")]
    # The New York tickers are SPY, IBM, AAPL, then MSFT after the Tokyo one: two runs.
    requests, _ = tick(
        schedules["xnys_after_close"],
        nyse_instance,
        datetime(2024, 11, 27, 16, 30, tzinfo=NEW_YORK),
    )
    assert ranges(requests) == [
        ("2024-11-27|SPY", "2024-11-27|AAPL"),
        ("2024-11-27|MSFT", "2024-11-27|MSFT"),
    ]


@pytest.mark.integration
def test_no_active_ticker_means_no_run(pg_server: LocalPostgres) -> None:
    with postgres_instance(pg_server) as instance:
        requests, skip = tick(
            NYSE["xnys_after_close"], instance, datetime(2024, 11, 27, 16, 30, tzinfo=NEW_YORK)
        )
    assert requests == []
    assert "no active ticker trades on XNYS" in (skip or "")


@pytest.mark.integration
def test_timings_schedule_covers_the_catchup_window_and_a_week_ahead(
    nyse_instance: dg.DagsterInstance,
) -> None:
    requests, _ = tick(
        NYSE["market_timings_daily"],
        nyse_instance,
        datetime(2024, 11, 28, 0, 15, tzinfo=ZoneInfo("UTC")),
    )
    assert ranges(requests) == [("2024-11-14", "2024-12-05")]


def test_bad_operations_settings_are_named() -> None:
    with pytest.raises(ValueError, match="CANDLE_CATCHUP_CRON='weekly' is not a cron expression"):
        OperationsSettings.from_env({"CANDLE_CATCHUP_CRON": "weekly"})
    with pytest.raises(ValueError, match="CANDLE_MARKET_API_POOL_LIMIT=0 must be at least 1"):
        OperationsSettings.from_env({"CANDLE_MARKET_API_POOL_LIMIT": "0"})
    with pytest.raises(ValueError, match="CANDLE_SCHEDULE_DELAY_MINUTES='soon' is not a whole"):
        OperationsSettings.from_env({"CANDLE_SCHEDULE_DELAY_MINUTES": "soon"})


# --- runs the schedules ask for, executed on the bundled sample ------------------------------

SAMPLE_TICKERS = ["SPY", "AIG", "BAC", "IBM"]


class Deployment:
    """The real assets and jobs on a fresh warehouse and instance."""

    def __init__(self, url: str, instance: dg.DagsterInstance, csv_dir: Path) -> None:
        self.url = url
        self.instance = instance
        self.defs = dg.Definitions(
            assets=ASSETS, jobs=JOBS, resources=build_resources(settings_for(csv_dir), url)
        )

    def execute(self, job_name: str, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(job_name)
        selection = request.asset_selection
        return job.execute_in_process(
            instance=self.instance,
            tags=request.tags,
            asset_selection=list(selection) if selection else None,
            raise_on_error=False,
        )

    def rows(self, table: str) -> dict[tuple[str, date], int]:
        query = sa.text(f"SELECT ticker, trade_date, count(*) FROM market.{table} GROUP BY 1, 2")
        with engine_for(self.url).connect() as conn:
            return {(t, d): n for t, d, n in conn.execute(query)}


@pytest.fixture
def deployment(pg_server: LocalPostgres, tmp_path: Path) -> Iterator[Deployment]:
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR, csv_dir)
    with postgres_instance(pg_server) as instance:
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, SAMPLE_TICKERS)
        yield Deployment(create_database(pg_server, "warehouse"), instance, csv_dir)


@pytest.mark.integration
def test_scheduled_runs_fill_the_warehouse_and_catchup_fills_the_gaps(
    deployment: Deployment, tmp_path: Path
) -> None:
    utc = ZoneInfo("UTC")
    timings, _ = tick(
        NYSE["market_timings_daily"], deployment.instance, datetime(2013, 10, 7, 0, 15, tzinfo=utc)
    )
    assert deployment.execute("market_timings_job", timings[0]).success

    # Monday 2013-10-07 after the close: Saturday, Sunday and Monday for the four tickers.
    monday, _ = tick(
        NYSE["xnys_after_close"],
        deployment.instance,
        datetime(2013, 10, 7, 16, 30, tzinfo=NEW_YORK),
    )
    assert ranges(monday) == [("2013-10-05|SPY", "2013-10-07|IBM")]
    assert deployment.execute("ticker_days_job", monday[0]).success
    candles = deployment.rows("candles")
    assert {day for _, day in candles} == {date(2013, 10, 7)}
    assert {ticker for ticker, _ in candles} == set(SAMPLE_TICKERS)

    # Tuesday: quotes only (candles never ran); Wednesday: IBM's file is broken, its run fails.
    tuesday = dg.RunRequest(
        asset_selection=[dg.AssetKey("raw_quotes"), dg.AssetKey("validated_quotes")],
        tags=range_tags("2013-10-08|SPY", "2013-10-08|IBM"),
    )
    assert deployment.execute("ticker_days_job", tuesday).success
    ibm_file = tmp_path / "csv" / "lean-minute" / "IBM" / "2013-10-09.csv"
    ibm_file.write_text("this is not a csv of bars\n")
    wednesday_ibm = dg.RunRequest(tags=range_tags("2013-10-09|IBM", "2013-10-09|IBM"))
    assert not deployment.execute("ticker_days_job", wednesday_ibm).success
    status = deployment.instance.get_status_by_partition(
        dg.AssetKey("raw_quotes"), ["2013-10-09|IBM"], ticker_day_partitions
    )
    assert status == {"2013-10-09|IBM": dg.AssetPartitionStatus.FAILED}

    # Saturday's catch-up over the 7 days 2013-10-05..2013-10-11.
    catchup = schedules_for(NYSE_DIRECTORY, catchup_days=7)["catchup_weekly"]
    saturday = datetime(2013, 10, 12, 6, 0, tzinfo=utc)
    requests, _ = tick(catchup, deployment.instance, saturday)
    plan = [
        (tuple(key.to_user_string() for key in r.asset_selection or []), *ranges([r])[0])
        for r in requests
    ]
    assert sorted(plan) == [
        # Tuesday's candles only: the quotes are there, no provider call again.
        (("candles",), "2013-10-08|SPY", "2013-10-08|IBM"),
        # Wednesday (three never run, IBM failed) to Friday, all four tickers: one run.
        (("raw_quotes", "validated_quotes", "candles"), "2013-10-09|SPY", "2013-10-11|IBM"),
    ]

    shutil.copy(SAMPLE_DATA_DIR / "lean-minute" / "IBM" / "2013-10-09.csv", ibm_file)
    for request in requests:
        assert deployment.execute("ticker_days_job", request).success
    candles = deployment.rows("candles")
    assert {day for _, day in candles} == {date(2013, 10, d) for d in (7, 8, 9, 10, 11)}
    assert len(candles) == 5 * len(SAMPLE_TICKERS)
    requests, skip = tick(catchup, deployment.instance, saturday)
    assert requests == []
    assert "all 28 partitions of 2013-10-05..2013-10-11 are materialised" in (skip or "")


def test_listings_come_from_the_active_watch_list(
    nyse_instance: dg.DagsterInstance, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candle_pipeline.resources.warehouse import ensure_tables  # noqa: PLC0415

    ensure_tables(warehouse_url)
    with engine_for(warehouse_url).begin() as connection:
        watchlist.add(
            connection,
            [
                watchlist.NewTicker("SPY"),
                watchlist.NewTicker("IBM"),
                watchlist.NewTicker("AAPL", exchange="XNAS"),
                watchlist.NewTicker("NVDA"),
            ],
            "XNYS",
        )
        watchlist.deactivate(connection, ["IBM"])
    monkeypatch.setenv("CANDLE_DATABASE_URL", warehouse_url)
    assert sorted(watchlist_listings(nyse_instance)) == [("AAPL", "XNAS"), ("SPY", "XNYS")], (
        "inactive IBM and unregistered NVDA are not scheduled"
    )
