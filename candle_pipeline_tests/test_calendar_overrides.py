"""Calendar corrections end to end: the `calendar` commands on a real warehouse, runs of the real
graph on the bundled sample, and the sensor that makes a correction take effect by itself, on a
real Dagster instance; provider requests counted from the runs' metadata."""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from candle_pipeline import coverage, runs
from candle_pipeline.cli import EXIT_USAGE, main
from candle_pipeline.domain.calendar_overrides import STORED_BARS_AGAIN
from candle_pipeline.domain.freshness import latest_due_sessions
from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for
from candle_pipeline.schedules import build_schedules, watchlist_listings
from candle_pipeline.sensors.calendar_overrides import calendar_overrides_sensor
from candle_pipeline.settings import OperationsSettings
from candle_pipeline.warehouse.calendar_overrides import in_force_frame
from candle_pipeline_tests.conftest import definitions_for, table, watch
from candle_pipeline_tests.quality.records import latest_evaluations, quality_reports
from candle_pipeline_tests.run_requests import plan, provider_requests
from candle_pipeline_tests.test_cli import one_error_line

pytestmark = pytest.mark.integration

MONDAY, TUESDAY, WEDNESDAY = date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9)
RAW = dg.AssetKey("raw_quotes")
VALIDATED = dg.AssetKey("validated_quotes")
REASON = "national day of mourning"
NOTICE = "https://www.nyse.com/trader-update/history#example-notice"
IN_FORCE = "SELECT count(*) FROM market.calendar_overrides WHERE removed_at IS NULL"


def in_force(url: str) -> int:
    with engine_for(url).connect() as conn:
        return conn.execute(sa.text(IN_FORCE)).scalar_one()


def test_bad_corrections_are_refused_in_one_line_and_change_nothing(
    external_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = external_env["CANDLE_DATABASE_URL"]
    close = ["calendar", "close", "XNYS", "2013-10-08", "--reason", REASON, "--source", NOTICE]
    assert main(close) == 0
    assert "recorded a closure of XNYS on 2013-10-08" in capsys.readouterr().out
    shipped_and_mine = in_force(url)
    for argv, message in [
        (["calendar", "close", "XXXX", "2013-10-09", "--reason", "x"], "exchange 'XXXX'"),
        (["calendar", "late-open", "XNYS", "2013-10-09", "--at", "25:00"], "'25:00' is not a"),
        (
            ["calendar", "early-close", "XNYS", "2013-10-09", "--at", "16:30"],
            "16:30 is outside XNYS on 2013-10-09's regular session (09:30-16:00 local time)",
        ),
        (["calendar", "close", "XNYS", "1850-01-02", "--reason", "x"], "1850-01-02 is outside"),
        (["calendar", "close", "XNYS", "2013-10-32", "--reason", "x"], "is not a date"),
        (["calendar", "close", "XNYS", "2013-10-09"], "closing XNYS on 2013-10-09 needs a"),
        (["calendar", "close", "XNYS", "2013-10-05", "--reason", "x"], "has no session"),
        (
            ["calendar", "late-open", "XNYS", "2013-10-08", "--at", "10:30"],
            "XNYS on 2013-10-08 already has a closure",
        ),
        (["calendar", "remove", "XNYS", "2013-10-09"], "XNYS has no calendar correction on"),
        (["calendar", "close", "XNYS"], "needs an exchange (MIC) and a date"),
    ]:
        assert main(argv) == EXIT_USAGE, argv
        one_error_line(capsys, message)
    assert in_force(url) == shipped_and_mine, "nothing was recorded"

    recorded = table(url, "calendar_overrides").query("session_date == @TUESDAY")
    [row] = recorded.to_dict("records")
    assert (row["mic"], row["kind"], row["reason"], row["source"]) == (
        "XNYS",
        CLOSED,
        REASON,
        NOTICE,
    )
    assert row["recorded_by"] == getpass.getuser()
    assert pd.notna(row["recorded_at"]) and pd.isna(row["removed_at"])

    assert main(["calendar", "list", "XNYS"]) == 0
    listed = capsys.readouterr().out
    [line] = [line for line in listed.splitlines() if "2013-10-08" in line]
    assert [cell.strip() for cell in line.strip("|").split("|")][:5] == [
        "XNYS",
        "2013-10-08",
        CLOSED,
        "",
        REASON,
    ]
    assert "2002-09-11" in listed, "the shipped corrections are listed too"
    assert main(["calendar", "remove", "XNYS", "2013-10-08"]) == 0
    assert "removed 1 correction(s) of XNYS on 2013-10-08" in capsys.readouterr().out
    assert in_force(url) == shipped_and_mine - 1
    removed = table(url, "calendar_overrides").query("session_date == @TUESDAY")
    assert removed["removed_by"].tolist() == [getpass.getuser()], "the history stays"


def tick(instance: dg.DagsterInstance, url: str, cursor: str | None) -> dg.SensorResult:
    resources = {"warehouse": WarehouseResource(database_url=url)}
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return calendar_overrides_sensor(context)


def launch(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> str:
    """Run what the sensor asked for, as the daemon would: same job, config, tags, assets."""
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        instance=instance,
        run_config=request.run_config,
        tags=request.tags,
        asset_selection=request.asset_selection,
    )
    assert result.success
    return result.run_id


def statuses(url: str, day: date) -> dict[str, str]:
    states = table(url, "ticker_days")
    on_day = states[states["trade_date"] == day]
    return dict(zip(on_day["ticker"], on_day["status"], strict=True))


def raw_rows(url: str, day: date) -> int:
    return int((table(url, "raw_quotes")["trade_date"] == day).sum())


def test_a_closure_makes_a_day_closed_not_failed_and_removing_it_fetches_the_day(
    external_env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    url = external_env["CANDLE_DATABASE_URL"]
    watch(url, ["SPY", "IBM"], MONDAY)
    defs = definitions_for(url)
    assert main(["calendar", "close", "XNYS", "2013-10-08", "--reason", REASON]) == 0
    # No market timings stored yet: the first run lays the closure over the day by itself.
    first = tick(instance, url, None)
    assert first.run_requests == []

    [outcome] = runs.materialize(defs, instance, MONDAY, WEDNESDAY)
    assert outcome.success, outcome.error
    # The csv source reads a file per ticker and day, and each ticker's factor file.
    assert provider_requests(instance, outcome.run_id) == 6, "two tickers, two open days"
    assert statuses(url, TUESDAY) == {"IBM": CLOSED, "SPY": CLOSED}
    assert statuses(url, MONDAY) == statuses(url, WEDNESDAY) == {"IBM": COMPLETE, "SPY": COMPLETE}
    assert raw_rows(url, TUESDAY) == 0
    for check, asset in (("coverage", RAW), ("quality_score", VALIDATED)):
        assert latest_evaluations(instance, check, asset)["2013-10-08"].passed, check
    report = coverage.report(WarehouseResource(database_url=url), ["SPY"], MONDAY, WEDNESDAY)
    assert "2013-10  #C#" in report
    assert f"a closure of XNYS on 2013-10-08: {REASON}" in report

    assert main(["calendar", "remove", "XNYS", "2013-10-08"]) == 0
    reopened = tick(instance, url, first.cursor)
    assert plan(reopened) == [("2013-10-08", "2013-10-08", ["IBM", "SPY"])]
    [request] = reopened.run_requests
    assert request.asset_selection is None, "the whole chain is the whole job"
    run_id = launch(defs, instance, request)
    assert provider_requests(instance, run_id) == 4, "only the reopened day, nothing complete"
    assert statuses(url, TUESDAY) == {"IBM": COMPLETE, "SPY": COMPLETE}
    assert raw_rows(url, TUESDAY) > 0
    assert tick(instance, url, reopened.cursor).run_requests == [], "asked once"

    # Closing a day whose data is complete keeps its rows and asks the provider nothing.
    stored = raw_rows(url, MONDAY)
    assert main(["calendar", "close", "XNYS", "2013-10-07", "--reason", REASON]) == 0
    closed = tick(instance, url, reopened.cursor)
    [request] = closed.run_requests
    run_id = launch(defs, instance, request)
    assert provider_requests(instance, run_id) == 0
    assert statuses(url, MONDAY) == {"IBM": CLOSED, "SPY": CLOSED}
    assert raw_rows(url, MONDAY) == stored, "a closed day's data is kept"


def spy_day(url: str, day: date) -> tuple[int, pd.Timestamp]:
    """Bars the latest quality report of SPY expected on `day`, and its 1d candle's start."""
    reports = quality_reports(url).loc[[f"{day.isoformat()}|SPY"]]
    latest = reports.sort_values("evaluated_at").iloc[-1]
    candles = table(url, "candles").query("ticker == 'SPY' and interval == '1d'")
    [start] = candles.loc[candles["trade_date"] == day, "ts"]
    return int(latest["expected_bars"]), start


def test_a_late_open_counts_completeness_from_the_late_open_without_a_provider_call(
    external_env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    url = external_env["CANDLE_DATABASE_URL"]
    watch(url, ["SPY"], MONDAY)
    defs = definitions_for(url)
    [outcome] = runs.materialize(defs, instance, TUESDAY, TUESDAY)
    assert outcome.success, outcome.error
    cursor = tick(instance, url, None).cursor
    assert spy_day(url, TUESDAY) == (390, pd.Timestamp("2013-10-08 13:30", tz="UTC"))
    stored = raw_rows(url, TUESDAY)

    assert main(["calendar", "late-open", "XNYS", "2013-10-08", "--at", "10:30"]) == 0
    late = tick(instance, url, cursor)
    assert plan(late) == [("2013-10-08", "2013-10-08", ["SPY"])]
    [request] = late.run_requests
    assert request.asset_selection == [dg.AssetKey(name) for name in STORED_BARS_AGAIN]
    run_id = launch(defs, instance, request)
    fetched = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=RAW), limit=100)
    assert run_id not in {record.run_id for record in fetched.records}, "nothing fetched"
    assert raw_rows(url, TUESDAY) == stored
    timings = table(url, "market_timings").query("mic == 'XNYS' and session_date == @TUESDAY")
    assert timings["open_utc"].tolist() == [pd.Timestamp("2013-10-08 14:30", tz="UTC")]
    assert timings["expected_minute_bars"].tolist() == [330]
    assert spy_day(url, TUESDAY) == (330, pd.Timestamp("2013-10-08 14:30", tz="UTC"))
    assert statuses(url, TUESDAY) == {"SPY": COMPLETE}

    assert main(["calendar", "remove", "XNYS", "2013-10-08"]) == 0
    restored = tick(instance, url, late.cursor)
    [request] = restored.run_requests
    launch(defs, instance, request)
    assert spy_day(url, TUESDAY) == (390, pd.Timestamp("2013-10-08 13:30", tz="UTC"))


def test_schedules_and_freshness_see_the_corrections(
    external_env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    """The after-close schedule skips a day closed by a correction and covers it with the next
    session; freshness waits for a corrected early close, not the regular one."""
    url = external_env["CANDLE_DATABASE_URL"]
    watch(url, ["SPY"], MONDAY, exchange="XNYS")
    assert main(["calendar", "close", "XNYS", "2013-10-08", "--reason", REASON]) == 0
    operations = OperationsSettings.from_env({})
    warehouse = WarehouseResource(database_url=url)
    [after_close] = [
        schedule
        for schedule in build_schedules(["XNYS"], watchlist_listings, operations)
        if schedule.name == "xnys_after_close"
    ]

    def tick_at(day: date) -> dg.ScheduleExecutionData:
        at = datetime.combine(day, time(16, 30), tzinfo=ZoneInfo("America/New_York"))
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=at, resources={"warehouse": warehouse}
        ) as context:
            return after_close.evaluate_tick(context)

    assert tick_at(TUESDAY).skip_message == "XNYS has no session on 2013-10-08"
    assert plan(list(tick_at(WEDNESDAY).run_requests or [])) == [
        ("2013-10-08", "2013-10-09", ["SPY"])
    ]

    assert main(["calendar", "early-close", "XNYS", "2013-10-09", "--at", "13:00"]) == 0
    with engine_for(url).connect() as conn:
        corrections = in_force_frame(conn, ["XNYS"], MONDAY, WEDNESDAY)
    # 14:00 New York on the 9th: the early close plus the delay has passed.
    now = datetime(2013, 10, 9, 18, tzinfo=UTC)
    delay, lookback = timedelta(minutes=30), 5
    # The library alone: the 9th is not due before 16:30, so the latest due session is the 8th.
    assert latest_due_sessions(["XNYS"], now, delay, lookback)["XNYS"].session_date == TUESDAY
    due = latest_due_sessions(["XNYS"], now, delay, lookback, corrections)["XNYS"]
    assert due.session_date == WEDNESDAY
