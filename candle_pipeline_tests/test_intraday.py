"""The intraday refresh end to end: the real schedule evaluated at pinned moments on a real
Dagster instance and watch list, the runs it asks for materialised against a real PostgreSQL
warehouse, Yahoo answered by a real local HTTP server from a hand-made in-session 1m answer
(fixtures/yahoo-http-in-session/README.md) cut at the pinned moment."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from candle_pipeline.domain.ticker_days import COMPLETE, IN_PROGRESS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for
from candle_pipeline.runs import MARKET_DATA_OP
from candle_pipeline.schedules import build_schedules, watchlist_listings
from candle_pipeline.settings import ENV_DATABASE_URL, OperationsSettings
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import FIXTURES_DIR, create_database, table, watch
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, Fault, yahoo_definitions

pytestmark = pytest.mark.integration

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = date(2025, 2, 3)
SUNDAY = date(2025, 2, 2)
PRESIDENTS_DAY = date(2025, 2, 17)
IN_SESSION = FIXTURES_DIR / "yahoo-http-in-session"
RECORDING = IN_SESSION / "chart-AAPL-2025-02-03-interval-1m.in-session.json"
OPERATIONS = OperationsSettings.from_env({})
RAW = dg.AssetKey("raw_quotes")
# A rate far above what these tests ask for: the budget is tested on its own.
FAST_RATE = 6000.0


def new_york(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


class InSessionYahoo(FakeYahoo):
    """The fake Yahoo service at the moment `now`: a chart answer holds the recorded bars from
    the request's `period1` up to `now`, the last one still forming. `starts` records the
    `period1` of every chart request."""

    def __init__(self, folder: Path = IN_SESSION) -> None:
        super().__init__(folder)
        self.now = datetime.min.replace(tzinfo=UTC)
        self.starts: list[datetime] = []

    def _answer(self, path: str, fault: Fault | None) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = super()._answer(path, fault)
        query = dict(parse_qsl(urlsplit(path).query))
        if "period1" not in query or status != HTTPStatus.OK:
            return status, headers, body
        first, last = int(query["period1"]), self.now.timestamp()
        self.starts.append(datetime.fromtimestamp(first, UTC))
        payload = json.loads(body)
        result = payload["chart"]["result"][0]
        kept = [i for i, stamp in enumerate(result["timestamp"]) if first <= stamp <= last]
        result["timestamp"] = [result["timestamp"][i] for i in kept]
        quote = result["indicators"]["quote"][0]
        for column, values in quote.items():
            quote[column] = [values[i] for i in kept]
        result["meta"]["regularMarketTime"] = int(last)
        return status, headers, json.dumps(payload).encode()


def schedules_for(
    requests_per_minute: float = FAST_RATE, **operations: object
) -> dict[str, dg.ScheduleDefinition]:
    built = build_schedules(
        ("XNAS", "XNYS"),
        watchlist_listings,
        dataclasses.replace(OPERATIONS, **operations),
        requests_per_minute=requests_per_minute,
    )
    return {schedule.name: schedule for schedule in built}


def tick(
    schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, at: datetime
) -> tuple[list[dg.RunRequest], str | None]:
    """The schedule's tick at `at`: its run requests and its skip message."""
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources={"warehouse": WarehouseResource(database_url=dg.EnvVar(ENV_DATABASE_URL))},
    ) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or []), result.skip_message


def asked(requests: list[dg.RunRequest]) -> list[tuple[str, str, list[str]]]:
    """(exchange, day, tickers) of each requested run."""
    return [
        (
            request.tags["candle/exchange"],
            request.tags["dagster/asset_partition_range_start"],
            request.run_config["ops"][MARKET_DATA_OP]["config"]["tickers"],
        )
        for request in requests
    ]


def execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    request: dg.RunRequest,
    as_of: datetime | None = None,
) -> str:
    """Run what a schedule asked for; `as_of` pins the moment of a run whose schedule leaves it
    to the wall clock (the after-close run)."""
    config = request.run_config
    if as_of is not None:
        op_config = {**config["ops"][MARKET_DATA_OP]["config"], "as_of": as_of.isoformat()}
        config = {"ops": {MARKET_DATA_OP: {"config": op_config}}}
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        instance=instance, run_config=config, tags=request.tags
    )
    assert result.success
    return result.run_id


def recorded_bars_before(moment: datetime) -> int:
    """Bars of the hand-made answer that ended by `moment`."""
    result = json.loads(RECORDING.read_text())["response"]["bodyJson"]["chart"]["result"][0]
    return sum(stamp + 60 <= moment.timestamp() for stamp in result["timestamp"])


def aapl_day(url: str, name: str) -> pd.DataFrame:
    frame = table(url, name)
    return frame[(frame["ticker"] == "AAPL") & (frame["trade_date"] == MONDAY)]


def candle_starts(url: str, interval: str) -> list[str]:
    """New York start times of AAPL's candles of `interval` on Monday."""
    candles = aapl_day(url, "candles")
    stamps = candles.loc[candles["interval"] == interval, "ts"]
    return [stamp.tz_convert(NEW_YORK).strftime("%H:%M") for stamp in stamps]


def day_metadata(instance: dg.DagsterInstance) -> dict[str, object]:
    """The latest `raw_quotes` materialisation of Monday's partition, its metadata values."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=[MONDAY.isoformat()]), limit=1
    ).records
    return {key: value.value for key, value in record.asset_materialization.metadata.items()}


def state(url: str) -> pd.Series:
    [row] = aapl_day(url, "ticker_days").to_dict("records")
    return pd.Series(row)


@pytest.fixture
def monday_at_eleven(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, InSessionYahoo, dg.Definitions]]:
    """AAPL (XNAS) marked for intraday, refreshed once by the 11:00 New York tick."""
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], MONDAY, exchange="XNAS", intraday=True)
    monkeypatch.setenv(ENV_DATABASE_URL, url)
    with InSessionYahoo() as yahoo:
        defs = yahoo_definitions(
            url, yahoo.base_url, yahoo_interval="1m", requests_per_minute=FAST_RATE
        )
        eleven = new_york(MONDAY, 11, 0)
        requests, _ = tick(schedules_for()["intraday_refresh"], instance, eleven)
        assert asked(requests) == [("XNAS", MONDAY.isoformat(), ["AAPL"])]
        yahoo.now = eleven
        execute(defs, instance, requests[0])
        yield url, yahoo, defs


def test_a_refresh_at_eleven_stores_the_closed_bars_and_the_next_one_only_what_is_new(
    monday_at_eleven: tuple[str, InSessionYahoo, dg.Definitions],
    instance: dg.DagsterInstance,
) -> None:
    url, yahoo, defs = monday_at_eleven
    eleven = new_york(MONDAY, 11, 0)
    raw = aapl_day(url, "raw_quotes")
    assert len(raw) == recorded_bars_before(eleven)
    assert raw["ts"].max() == pd.Timestamp(new_york(MONDAY, 10, 59)), "not the forming 11:00"
    assert yahoo.starts == [datetime(2025, 2, 3, 5, 0, tzinfo=UTC)], "the whole day so far"

    assert candle_starts(url, "5m")[-1] == "10:55"
    assert len(candle_starts(url, "5m")) == 18
    assert candle_starts(url, "1h") == ["09:30"], "10:30-11:30 has not closed"
    assert candle_starts(url, "1d") == []

    provisional = state(url)
    assert provisional["status"] == IN_PROGRESS
    assert provisional["last_bar_at"] == pd.Timestamp(new_york(MONDAY, 10, 59))
    assert provisional["quality_score"] == 1.0
    report = aapl_day(url, "quality_reports").iloc[-1]
    assert (report["expected_bars"], report["usable_bars"], report["gaps"]) == (90, 90, 0)
    metadata = day_metadata(instance)
    assert metadata["tickers_in_progress"] == 1
    assert metadata["tickers_complete"] == 0
    assert metadata["in_progress_last_bar"] == "2025-02-03T15:59:00+00:00"

    # As if the morning's answer had carried a dividend: the 11:00-11:15 window cannot show it.
    with engine_for(url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO market.corporate_actions "
                "(ticker, ex_date, dividend, split_ratio, source, fetched_at, first_seen) "
                "VALUES ('AAPL', :day, 0.25, NULL, 'yahoo', :at, :at)"
            ),
            {"day": MONDAY, "at": eleven},
        )

    quarter_past = new_york(MONDAY, 11, 15)
    requests, _ = tick(schedules_for()["intraday_refresh"], instance, quarter_past)
    yahoo.now = quarter_past
    execute(defs, instance, requests[0])
    assert yahoo.starts[-1] == new_york(MONDAY, 11, 0), "only the bars after 10:59"
    after = aapl_day(url, "raw_quotes")
    assert len(after) == len(raw) + 15
    assert after["ts"].max() == pd.Timestamp(new_york(MONDAY, 11, 14))
    assert candle_starts(url, "5m")[-1] == "11:10"
    assert state(url)["status"] == IN_PROGRESS
    actions = table(url, "corporate_actions")
    assert actions[["ticker", "dividend"]].to_dict("records") == [
        {"ticker": "AAPL", "dividend": 0.25}
    ], "the day's stored actions stay through a refresh"

    from candle_pipeline import coverage  # noqa: PLC0415 - the CLI's view, as the user sees it

    assert "in_progress" in coverage.report(
        WarehouseResource(database_url=url), None, MONDAY, MONDAY
    )


def test_the_after_close_run_replaces_every_provisional_row(
    monday_at_eleven: tuple[str, InSessionYahoo, dg.Definitions],
    instance: dg.DagsterInstance,
) -> None:
    url, yahoo, defs = monday_at_eleven
    after_close = new_york(MONDAY, 16, 30)
    requests, _ = tick(schedules_for()["xnas_after_close"], instance, after_close)
    [request] = requests
    assert request.tags["dagster/asset_partition_range_end"] == MONDAY.isoformat()
    assert asked(requests) == [("XNAS", "2025-02-01", ["AAPL"])], "from after Friday's session"
    yahoo.now = after_close
    execute(defs, instance, request, as_of=after_close)

    assert yahoo.starts[-1] == datetime(2025, 2, 3, 5, 0, tzinfo=UTC), "the whole day again"
    raw = aapl_day(url, "raw_quotes")
    assert len(raw) == recorded_bars_before(after_close)
    assert raw["ts"].duplicated().sum() == 0
    final = state(url)
    assert final["status"] == COMPLETE
    assert final["quality_score"] == 1.0
    assert len(candle_starts(url, "5m")) == 78
    assert candle_starts(url, "1d") == ["09:30"]
    states = table(url, "ticker_days")
    assert not (states["status"] == IN_PROGRESS).any(), "no provisional row survives"
    assert day_metadata(instance)["tickers_in_progress"] == 0


def test_open_sessions_only_crypto_on_sundays_and_xnys_neither_on_holidays_nor_after_close(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["BTC-USD"], SUNDAY, intraday=True)
    watch(url, ["IBM"], SUNDAY, exchange="XNYS", intraday=True)
    watch(url, ["SPY"], SUNDAY, exchange="XNYS")
    monkeypatch.setenv(ENV_DATABASE_URL, url)
    refresh = schedules_for()["intraday_refresh"]

    def runs_at(moment: datetime) -> list[tuple[str, str, list[str]]]:
        return asked(tick(refresh, instance, moment)[0])

    crypto = ("24/7", SUNDAY.isoformat(), ["BTC-USD"])
    assert runs_at(datetime(2025, 2, 2, 12, 0, tzinfo=UTC)) == [crypto]
    holiday = ("24/7", PRESIDENTS_DAY.isoformat(), ["BTC-USD"])
    assert runs_at(new_york(PRESIDENTS_DAY, 11, 0)) == [holiday]
    monday_crypto = ("24/7", MONDAY.isoformat(), ["BTC-USD"])
    assert runs_at(new_york(MONDAY, 16, 30)) == [monday_crypto]
    assert runs_at(new_york(MONDAY, 11, 0)) == [
        monday_crypto,
        ("XNYS", MONDAY.isoformat(), ["IBM"]),
    ], "SPY is not marked for intraday"
    everyone = schedules_for(intraday_all=True)["intraday_refresh"]
    [_, xnys] = asked(tick(everyone, instance, new_york(MONDAY, 11, 0))[0])
    assert xnys == ("XNYS", MONDAY.isoformat(), ["IBM", "SPY"])

    [request, _] = tick(refresh, instance, new_york(MONDAY, 11, 0))[0]
    config = request.run_config["ops"][MARKET_DATA_OP]["config"]
    assert config["as_of"] == "2025-02-03T16:00:00+00:00", "the run stands for its tick"


def test_a_budget_that_cannot_fit_is_refused_with_both_numbers(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = create_database(pg_server, "warehouse")
    names = ["".join(letters) for letters in itertools.product("ABCDEFGHIJ", repeat=4)][:2000]
    watch(url, names, MONDAY, exchange="XNYS", intraday=True)
    monkeypatch.setenv(ENV_DATABASE_URL, url)
    every_minute = schedules_for(requests_per_minute=60.0, intraday_minutes=1)
    requests, why = tick(every_minute["intraday_refresh"], instance, new_york(MONDAY, 11, 0))
    assert requests == []
    assert why is not None
    assert "2000 intraday ticker(s) on 1 exchange(s) need 4002 requests every 1 min" in why
    assert "60 requests/min allows 60" in why
    with engine_for(url).connect() as connection:
        assert len(watchlist.entries(connection)) == 2000


def test_a_moment_without_an_offset_is_refused_in_one_line(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], MONDAY, exchange="XNAS", intraday=True)
    with InSessionYahoo() as yahoo:
        defs = yahoo_definitions(url, yahoo.base_url, yahoo_interval="1m")
        result = defs.resolve_job_def("market_data_job").execute_in_process(
            instance=instance,
            run_config={"ops": {MARKET_DATA_OP: {"config": {"as_of": "2025-02-03 11:00"}}}},
            partition_key=MONDAY.isoformat(),
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "as_of='2025-02-03 11:00' is not an ISO 8601 time with an offset" in message
    assert yahoo.arrivals == [], "nothing was asked"
    assert table(url, "ticker_days").empty
