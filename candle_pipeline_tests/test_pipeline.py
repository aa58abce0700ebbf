"""The whole graph on the bundled sample: real PostgreSQL, a real Dagster instance and runs.

The sample's six tickers are watched from its first day to its last, so every day partition holds
all six: minute bars where the sample has a minute file, the daily bar otherwise.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.cli import SAMPLE_SESSIONS
from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import days_between
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline_tests.conftest import (
    create_database,
    definitions_for,
    postgres_instance,
    table,
    watch,
)
from candle_pipeline_tests.quality.records import (
    CANDLES,
    VALIDATED,
    evaluations,
    latest_evaluations,
    partition_metadata,
    quality_reports,
)

MINUTE_DIR = SAMPLE_DATA_DIR / "lean-minute"
CANDLES_PER_FULL_DAY = 78 + 26 + 13 + 7 + 2 + 1
SAMPLE_TICKERS = sorted({ticker for tickers, _, _ in SAMPLE_SESSIONS for ticker in tickers})
FIRST_DAY = min(start for _, start, _ in SAMPLE_SESSIONS)
LAST_DAY = max(end for _, _, end in SAMPLE_SESSIONS)
SAMPLE_DAYS = [day for _, start, end in SAMPLE_SESSIONS for day in days_between(start, end)]
WEEK = (date(2013, 10, 4), date(2013, 10, 11))
RAW = dg.AssetKey("raw_quotes")


@dataclass
class Warehouse:
    url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def materialize(self, start: date, end: date, **kwargs: object) -> list[runs.RunOutcome]:
        outcomes = runs.materialize(self.defs, self.instance, start, end, **kwargs)
        assert outcomes
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        return outcomes

    def table(self, name: str) -> pd.DataFrame:
        return table(self.url, name)


def new_warehouse(
    server: LocalPostgres, instance: dg.DagsterInstance, csv_dir: Path = SAMPLE_DATA_DIR
) -> Warehouse:
    url = create_database(server, "warehouse")
    watch(url, SAMPLE_TICKERS, FIRST_DAY, removed_on=LAST_DAY + timedelta(days=1))
    return Warehouse(url, definitions_for(url, csv_dir), instance)


@pytest.fixture(scope="module")
def sample(pg_server: LocalPostgres) -> Iterator[Warehouse]:
    """The bundled sample days, materialised once for the module's read-only tests."""
    with postgres_instance(pg_server) as instance:
        warehouse = new_warehouse(pg_server, instance)
        for _, start, end in SAMPLE_SESSIONS:
            warehouse.materialize(start, end)
        yield warehouse


def fixture_rows(ticker: str, day: date) -> int:
    path = MINUTE_DIR / ticker / f"{day.isoformat()}.csv"
    return len(pd.read_csv(path)) if path.exists() else 0


def provider_requests(instance: dg.DagsterInstance, day: str) -> list[int]:
    """`run_provider_requests` of each materialisation of raw_quotes' `day`, oldest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=[day]), limit=100, ascending=True
    ).records
    return [r.asset_materialization.metadata["run_provider_requests"].value for r in records]


def test_every_sample_ticker_is_stored_on_every_open_sample_day(sample: Warehouse) -> None:
    raw = sample.table("raw_quotes").groupby(["ticker", "trade_date"]).size()
    open_days = sorted({day for _, day in raw.index})
    assert len(open_days) == 12, "8 + 5 + 6 calendar days, 6 + 3 + 3 sessions"
    expected = {
        (ticker, day): fixture_rows(ticker, day) or 1
        for ticker in SAMPLE_TICKERS
        for day in open_days
    }
    assert {(t, d): int(n) for (t, d), n in raw.items()} == expected
    validated = sample.table("validated_quotes").groupby(["ticker", "trade_date"]).size()
    assert validated.to_dict() == raw.to_dict()
    candles = sample.table("candles").groupby(["ticker", "trade_date"]).size()
    early_close = ("GOOG", date(2015, 12, 24))
    for key, count in candles.items():
        if fixture_rows(*key) == 0:
            assert count == 1, f"{key}: a daily bar gives the 1d candle only"
        elif key == early_close:
            assert count == 42 + 14 + 7 + 4 + 1 + 1
        else:
            assert count == CANDLES_PER_FULL_DAY, key


def test_the_ticker_days_are_complete_or_closed(sample: Warehouse) -> None:
    states = sample.table("ticker_days")
    assert len(states) == len(SAMPLE_TICKERS) * len(SAMPLE_DAYS)
    assert set(states["status"]) == {COMPLETE, CLOSED}
    closed = states[states["status"] == CLOSED]
    assert set(closed["trade_date"]) == {
        date(2013, 10, 5),
        date(2013, 10, 6),
        date(2014, 6, 7),
        date(2014, 6, 8),
        date(2015, 12, 25),
        date(2015, 12, 26),
        date(2015, 12, 27),
    }
    complete = states[states["status"] == COMPLETE]
    assert (complete["quality_score"] >= 0.95).all()
    assert (complete["attempts"] == 1).all()
    assert set(complete["source"]) == {"csv"}


def test_spy_daily_candle_equals_the_regular_session_of_the_file(sample: Warehouse) -> None:
    bars = pd.read_csv(MINUTE_DIR / "SPY" / "2013-10-07.csv", parse_dates=["ts"])
    local = bars["ts"].dt.tz_convert("America/New_York")
    minutes = local.dt.hour * 60 + local.dt.minute
    regular = bars[(minutes >= 9 * 60 + 30) & (minutes < 16 * 60)]
    assert len(regular) == 390
    first, last = regular.iloc[0], regular.iloc[-1]

    candles = sample.table("candles")
    daily = candles[(candles["ticker"] == "SPY") & (candles["interval"] == "1d")]
    day = daily[daily["trade_date"] == date(2013, 10, 7)].iloc[0]
    assert day["ts"] == pd.Timestamp("2013-10-07 13:30", tz="UTC")
    assert day["open"] == first["open"]
    assert day["close"] == last["close"]
    assert day["high"] == regular["high"].max()
    assert day["low"] == regular["low"].min()
    assert day["volume"] == regular["volume"].sum()
    assert day["bar_count"] == 390


def test_goog_early_close_ends_at_13_new_york(sample: Warehouse) -> None:
    candles = sample.table("candles")
    goog = candles[(candles["ticker"] == "GOOG") & (candles["trade_date"] == date(2015, 12, 24))]
    close = pd.Timestamp("2015-12-24 18:00", tz="UTC")
    widths = {"5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240}
    for interval, minutes in widths.items():
        last = goog[goog["interval"] == interval]["ts"].max()
        assert last < close <= last + pd.Timedelta(minutes=minutes), interval
    assert goog[goog["interval"] == "1d"]["bar_count"].item() == 210
    validated = sample.table("validated_quotes")
    day = validated[
        (validated["ticker"] == "GOOG") & (validated["trade_date"] == date(2015, 12, 24))
    ]
    assert set(day.loc[day["ts"] >= close, "session"]) == {"post"}
    timings = sample.table("market_timings").set_index("session_date")
    expected = timings.loc[date(2015, 12, 24), "expected_minute_bars"]
    assert (day["session"] == "regular").sum() == expected == 210, "a complete early-close day"


def test_each_day_partition_says_what_it_holds(sample: Warehouse) -> None:
    saturday = partition_metadata(sample.instance, RAW, "2013-10-05")
    assert saturday["tickers_expected"].value == len(SAMPLE_TICKERS)
    assert saturday["tickers_closed"].value == len(SAMPLE_TICKERS)
    assert saturday["rows_written"].value == 0
    assert "quality_score_min" not in saturday
    monday = partition_metadata(sample.instance, VALIDATED, "2013-10-07")
    assert monday["tickers_complete"].value == len(SAMPLE_TICKERS)
    assert isinstance(monday["quality_score_min"], dg.FloatMetadataValue)
    assert 0.95 <= monday["quality_score_min"].value <= monday["quality_score_mean"].value <= 1
    assert sample.instance.get_materialized_partitions(CANDLES) == {
        day.isoformat() for day in SAMPLE_DAYS
    }


def test_real_days_score_what_a_reader_expects(sample: Warehouse) -> None:
    reports = quality_reports(sample.url)
    assert len(reports) == len(SAMPLE_TICKERS) * 12, "one report per open ticker-day"
    assert reports["score"].min() >= 0.95, reports["score"].to_dict()
    assert reports["passed"].all()

    early_close = reports.loc["2015-12-24|GOOG"]
    assert (early_close["expected_bars"], early_close["usable_bars"]) == (210, 210)
    assert (early_close["gaps"], early_close["score"]) == (0, 1.0)
    quiet = reports.loc["2015-12-28|GOOG"]
    assert (quiet["usable_bars"], quiet["gaps"]) == (382, 0)
    assert quiet["score"] == pytest.approx(0.9795, abs=1e-4)

    split_day = reports.loc["2014-06-09|AAPL"]
    assert (split_day["spike_rows"], split_day["regular_spikes"]) == (1, 0)
    assert split_day["score"] == pytest.approx(833 / 834)


def test_the_split_days_stale_print_is_flagged_and_shown(sample: Warehouse) -> None:
    validated = sample.table("validated_quotes")
    flagged = validated[~validated["is_valid"]]
    assert flagged[["ticker", "session", "open", "flag_spike"]].values.tolist() == [
        ["AAPL", "pre", 645.57, True]
    ]
    assert flagged["ts"].item() == pd.Timestamp("2014-06-09 08:00", tz="UTC")

    spikes = evaluations(sample.instance, "spikes")
    assert len(spikes) == len(SAMPLE_SESSIONS), "one per run: a run per sample week"
    assert {evaluation.partition for evaluation in spikes} == {None}
    [failed] = [evaluation for evaluation in spikes if not evaluation.passed]
    assert failed.severity == dg.AssetCheckSeverity.WARN
    assert failed.metadata["offending_ticker_days"].value == "AAPL 2014-06-09 (1)"
    assert "645.57" in failed.metadata["offending_rows"].value


def test_every_real_day_passes_its_checks(sample: Warehouse) -> None:
    days = {day.isoformat() for day in SAMPLE_DAYS}
    for check, asset in (("quality_score", VALIDATED), ("coverage", RAW)):
        latest = latest_evaluations(sample.instance, check, asset)
        assert set(latest) == days, check
        assert all(evaluation.passed for evaluation in latest.values()), check
        # Each names the day's latest materialisation: else the UI shows the day's check as
        # not current (a Missing partition in the check's Partitions tab).
        for day, evaluation in latest.items():
            [materialised] = sample.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[day]), limit=1
            ).records
            target = evaluation.target_materialization_data
            assert target is not None, (check, day)
            assert (target.storage_id, target.run_id) == (
                materialised.storage_id,
                materialised.run_id,
            ), (check, day)
    for check in ("gaps", "stale_runs"):
        assert all(evaluation.passed for evaluation in evaluations(sample.instance, check))


def test_a_complete_day_materialised_again_makes_no_provider_call_and_changes_no_row(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """The second run finds the csv folder gone: any provider call would fail its ticker."""
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR, csv_dir)
    warehouse = new_warehouse(pg_server, instance, csv_dir)
    warehouse.materialize(*WEEK)
    names = ["market_timings", *runs.MARKET_DATA_ASSETS, "ticker_days", "quality_reports"]
    before = {name: warehouse.table(name) for name in names}
    shutil.rmtree(csv_dir / "lean-minute")
    shutil.rmtree(csv_dir / "lean-daily")

    warehouse.materialize(*WEEK)
    for name in names:
        pd.testing.assert_frame_equal(warehouse.table(name), before[name], obj=name)
    # 4 tickers' minute files of 6 sessions, the daily files of the 2 others and the 6 tickers'
    # factor files, then nothing.
    assert provider_requests(instance, "2013-10-07") == [26 + 6, 0]


def test_refetch_replaces_exactly_the_named_ticker_days(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    warehouse = new_warehouse(pg_server, instance)
    warehouse.materialize(*WEEK)
    before = {name: warehouse.table(name) for name in runs.MARKET_DATA_ASSETS}
    monday = date(2013, 10, 7)
    warehouse.materialize(monday, monday, tickers=["SPY"], refetch=True)
    for name in runs.MARKET_DATA_ASSETS:
        after = warehouse.table(name)
        target = (after["ticker"] == "SPY") & (after["trade_date"] == monday)
        was = (before[name]["ticker"] == "SPY") & (before[name]["trade_date"] == monday)
        pd.testing.assert_frame_equal(
            after[~target].reset_index(drop=True), before[name][~was].reset_index(drop=True)
        )
        assert target.sum() == was.sum() > 0
    raw = warehouse.table("raw_quotes")
    spy = (raw["ticker"] == "SPY") & (raw["trade_date"] == monday)
    assert raw.loc[spy, "fetched_at"].min() > before["raw_quotes"]["fetched_at"].max()
    states = warehouse.table("ticker_days").set_index(["ticker", "trade_date"])
    assert states.loc[("SPY", monday), "attempts"] == 2
    assert states.loc[("IBM", monday), "attempts"] == 1


def test_a_new_tickers_history_leaves_the_other_tickers_rows_byte_identical(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["SPY", "AIG"], WEEK[0])
    warehouse = Warehouse(url, definitions_for(url), instance)
    warehouse.materialize(*WEEK)
    before = {name: warehouse.table(name) for name in (*runs.MARKET_DATA_ASSETS, "ticker_days")}

    watch(url, ["IBM"], WEEK[0])
    warehouse.materialize(*WEEK, tickers=["IBM"])
    for name, old in before.items():
        after = warehouse.table(name)
        pd.testing.assert_frame_equal(
            after[after["ticker"] != "IBM"].reset_index(drop=True), old, obj=name
        )
        assert (after["ticker"] == "IBM").sum() > 0, name
    states = warehouse.table("ticker_days")
    ibm = states[states["ticker"] == "IBM"]
    assert sorted(ibm["status"].value_counts().items()) == [(CLOSED, 2), (COMPLETE, 6)]


def test_a_closed_day_makes_no_provider_call(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """A file planted for Saturday 2013-10-05 would be read if the provider were asked for it."""
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR / "lean-minute" / "SPY", csv_dir / "lean-minute" / "SPY")
    friday = pd.read_csv(csv_dir / "lean-minute" / "SPY" / "2013-10-04.csv", parse_dates=["ts"])
    saturday = friday.assign(
        ts=(friday["ts"] + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    saturday.to_csv(csv_dir / "lean-minute" / "SPY" / "2013-10-05.csv", index=False)
    url = create_database(pg_server, "warehouse")
    watch(url, ["SPY"], date(2013, 10, 4))
    warehouse = Warehouse(url, definitions_for(url, csv_dir), instance)
    warehouse.materialize(date(2013, 10, 4), date(2013, 10, 7))
    raw = warehouse.table("raw_quotes")
    assert set(raw["trade_date"]) == {date(2013, 10, 4), date(2013, 10, 7)}
    assert provider_requests(instance, "2013-10-05") == [2], "two files read, for Friday and Monday"


def test_a_named_ticker_off_the_watch_list_is_refused_in_one_line(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    warehouse = new_warehouse(pg_server, instance)
    [outcome] = runs.materialize(
        warehouse.defs, instance, *WEEK, tickers=["NVDA"], select=runs.ALL_ASSETS
    )
    assert not outcome.success
    assert outcome.error.splitlines() == [
        "market_data: ticker(s) NVDA are not on the watch list: add them with "
        "`candle-pipeline tickers add` (days 2013-10-04..2013-10-11)"
    ]


@pytest.mark.parametrize(
    ("select", "message"),
    [
        (["raw_quotes"], "select validated_quotes, candles too"),
        (["raw_quotes", "candles"], "select validated_quotes too"),
    ],
)
def test_raw_quotes_without_what_is_built_from_it_is_refused(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, select: Sequence[str], message: str
) -> None:
    warehouse = new_warehouse(pg_server, instance)
    [outcome] = runs.materialize(warehouse.defs, instance, *WEEK, select=select)
    assert not outcome.success
    assert message in outcome.error
