"""The whole graph on the bundled sample: real PostgreSQL, real Dagster instance and runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import SAMPLE_DATA_DIR, SAMPLE_SESSIONS
from candle_pipeline_tests.conftest import create_database, definitions_for, postgres_instance
from candle_pipeline_tests.quality.records import (
    CANDLES,
    VALIDATED,
    evaluations,
    latest_evaluations,
    partition_metadata,
    quality_reports,
)

MINUTE_DIR = SAMPLE_DATA_DIR / "lean-minute"
CANDLES_PER_FULL_DAY = 78 + 26 + 13 + 7 + 1


@dataclass
class Warehouse:
    url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def materialize(
        self, tickers: Sequence[str], start: date, end: date, **kwargs: object
    ) -> list[runs.RunOutcome]:
        registered = self.instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
        new = [t for t in tickers if t not in registered]
        self.instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, new)
        outcomes = runs.materialize(self.defs, self.instance, tickers, start, end, **kwargs)
        assert outcomes
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        return outcomes

    def table(self, name: str) -> pd.DataFrame:
        with engine_for(self.url).connect() as conn:
            frame = pd.read_sql(sa.text(f"SELECT * FROM market.{name}"), conn)
        keys = [c for c in ("ticker", "mic", "interval", "ts", "session_date") if c in frame]
        return frame.sort_values(keys).reset_index(drop=True)


def new_warehouse(server: LocalPostgres, instance: dg.DagsterInstance, csv_dir: Path) -> Warehouse:
    url = create_database(server, "warehouse")
    return Warehouse(url, definitions_for(url, csv_dir), instance)


@pytest.fixture(scope="module")
def sample(pg_server: LocalPostgres) -> Iterator[Warehouse]:
    """The bundled sample, materialised once for the module's read-only tests."""
    with postgres_instance(pg_server) as instance:
        warehouse = new_warehouse(pg_server, instance, SAMPLE_DATA_DIR)
        for tickers, start, end in SAMPLE_SESSIONS:
            warehouse.materialize(tickers, start, end)
        yield warehouse


def fixture_rows(ticker: str, day: date) -> int:
    path = MINUTE_DIR / ticker / f"{day.isoformat()}.csv"
    return len(pd.read_csv(path)) if path.exists() else 0


def test_counts_match_the_fixture_files(sample: Warehouse) -> None:
    raw = sample.table("raw_quotes").groupby(["ticker", "trade_date"]).size()
    validated = sample.table("validated_quotes").groupby(["ticker", "trade_date"]).size()
    candles = sample.table("candles").groupby(["ticker", "trade_date"]).size()
    expected_raw = {}
    for tickers, start, end in SAMPLE_SESSIONS:
        for ticker in tickers:
            for day in runs.day_range(start, end):
                if fixture_rows(ticker, day):
                    expected_raw[(ticker, day)] = fixture_rows(ticker, day)
    as_dict = {(t, d): int(n) for (t, d), n in raw.items()}
    assert as_dict == expected_raw
    assert validated.to_dict() == raw.to_dict()
    early_close = (("GOOG", date(2015, 12, 24)), 42 + 14 + 7 + 4 + 1)
    for key, count in candles.items():
        expected = early_close[1] if key == early_close[0] else CANDLES_PER_FULL_DAY
        assert count == expected, key


def test_spy_daily_candle_equals_the_regular_session_of_the_file(sample: Warehouse) -> None:
    bars = pd.read_csv(MINUTE_DIR / "SPY" / "2013-10-07.csv", parse_dates=["ts"])
    local = bars["ts"].dt.tz_convert("America/New_York")
    minutes = local.dt.hour * 60 + local.dt.minute
    regular = bars[(minutes >= 9 * 60 + 30) & (minutes < 16 * 60)]
    assert len(regular) == 390
    first, last = regular.iloc[0], regular.iloc[-1]
    assert local[first.name].strftime("%H:%M") == "09:30"
    assert local[last.name].strftime("%H:%M") == "15:59"

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
    widths = {"5m": 5, "15m": 15, "30m": 30, "1h": 60}
    for interval, minutes in widths.items():
        last = goog[goog["interval"] == interval]["ts"].max()
        assert last < close <= last + pd.Timedelta(minutes=minutes), interval
    assert goog[goog["interval"] == "1d"]["bar_count"].item() == 210
    validated = sample.table("validated_quotes")
    after = validated[
        (validated["ticker"] == "GOOG")
        & (validated["ts"] >= close)
        & (validated["trade_date"] == date(2015, 12, 24))
    ]
    assert len(after) > 0
    assert set(after["session"]) == {"post"}
    timings = sample.table("market_timings").set_index("session_date")
    expected = timings.loc[date(2015, 12, 24), "expected_minute_bars"]
    day = validated[
        (validated["ticker"] == "GOOG") & (validated["trade_date"] == date(2015, 12, 24))
    ]
    assert (day["session"] == "regular").sum() == expected == 210, "a complete early-close day"


def test_closed_days_materialise_empty_with_a_reason(sample: Warehouse) -> None:
    records = sample.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("raw_quotes"), asset_partitions=["2013-10-05|SPY"]
        ),
        limit=1,
    ).records
    assert records, "the closed day's partition is materialised"
    metadata = records[0].asset_materialization.metadata
    assert metadata["rows"].value == 0
    assert "market closed" in metadata["reason"].value


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("fetched_at",) if c in frame])


def test_materialising_twice_leaves_identical_tables(pg_server: LocalPostgres, instance) -> None:
    warehouse = new_warehouse(pg_server, instance, SAMPLE_DATA_DIR)
    tickers, start, end = SAMPLE_SESSIONS[0]
    warehouse.materialize(tickers, start, end)
    first = {name: warehouse.table(name) for name in runs.ALL_ASSETS}
    warehouse.materialize(tickers, start, end)
    for name in runs.ALL_ASSETS:
        second = warehouse.table(name)
        assert len(second) == len(first[name]) > 0
        pd.testing.assert_frame_equal(comparable(second), comparable(first[name]))
    refetched = warehouse.table("raw_quotes")["fetched_at"]
    assert (refetched > first["raw_quotes"]["fetched_at"]).all(), "rows were rewritten, not kept"


def test_rematerialising_one_partition_leaves_the_others_untouched(
    pg_server: LocalPostgres, instance
) -> None:
    warehouse = new_warehouse(pg_server, instance, SAMPLE_DATA_DIR)
    tickers, start, end = SAMPLE_SESSIONS[0]
    warehouse.materialize(tickers, start, end)
    before = {name: warehouse.table(name) for name in runs.PER_TICKER_ASSETS}
    outcomes = warehouse.materialize(["SPY"], date(2013, 10, 7), date(2013, 10, 7))
    assert [o.first_key for o in outcomes] == ["2013-10-07", "2013-10-07|SPY"]
    for name in runs.PER_TICKER_ASSETS:
        after = warehouse.table(name)
        target = (after["ticker"] == "SPY") & (after["trade_date"] == date(2013, 10, 7))
        old_target = (before[name]["ticker"] == "SPY") & (
            before[name]["trade_date"] == date(2013, 10, 7)
        )
        pd.testing.assert_frame_equal(
            after[~target].reset_index(drop=True), before[name][~old_target].reset_index(drop=True)
        )
        assert target.sum() == old_target.sum() > 0
    raw_after = warehouse.table("raw_quotes")
    spy7 = (raw_after["ticker"] == "SPY") & (raw_after["trade_date"] == date(2013, 10, 7))
    assert raw_after.loc[spy7, "fetched_at"].min() > before["raw_quotes"]["fetched_at"].max()


def test_a_closed_day_makes_no_provider_call(
    pg_server: LocalPostgres, instance, tmp_path: Path
) -> None:
    """A file planted for Saturday 2013-10-05 would be read if the provider were asked for it."""
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR / "lean-minute" / "SPY", csv_dir / "lean-minute" / "SPY")
    friday = pd.read_csv(csv_dir / "lean-minute" / "SPY" / "2013-10-04.csv", parse_dates=["ts"])
    saturday = friday.assign(
        ts=(friday["ts"] + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    saturday.to_csv(csv_dir / "lean-minute" / "SPY" / "2013-10-05.csv", index=False)

    warehouse = new_warehouse(pg_server, instance, csv_dir)
    outcomes = warehouse.materialize(
        ["SPY"], date(2013, 10, 4), date(2013, 10, 7), select=["market_timings", "raw_quotes"]
    )
    raw = warehouse.table("raw_quotes")
    assert set(raw["trade_date"]) == {date(2013, 10, 4), date(2013, 10, 7)}
    run_records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_quotes")), limit=10
    ).records
    assert {r.partition_key for r in run_records} == {f"2013-10-0{d}|SPY" for d in (4, 5, 6, 7)}
    provider_requests = {
        r.asset_materialization.metadata["provider_requests"].value for r in run_records
    }
    assert provider_requests == {2}, "one file read per open day, none for the weekend"
    assert outcomes[-1].success


# --- Data quality on the real sample ---


def test_real_days_score_what_a_reader_expects(sample: Warehouse) -> None:
    reports = quality_reports(sample.url)
    scored = reports[reports["status"] == "scored"]
    assert len(scored) == 4 * 6 + 3 + 3
    assert scored["score"].min() >= 0.95, scored["score"].to_dict()
    assert scored["passed"].all()
    closed = reports[reports["status"] == "market closed"]
    assert {"2013-10-05|SPY", "2015-12-25|GOOG", "2014-06-08|AAPL"} <= set(closed.index)
    assert closed["score"].isna().all()

    early_close = reports.loc["2015-12-24|GOOG"]
    assert (early_close["expected_bars"], early_close["usable_bars"]) == (210, 210)
    assert (early_close["gaps"], early_close["score"]) == (0, 1.0)
    quiet = reports.loc["2015-12-28|GOOG"]
    assert (quiet["usable_bars"], quiet["gaps"]) == (382, 0)

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

    metadata = partition_metadata(sample.instance, VALIDATED, "2014-06-09|AAPL")
    assert isinstance(metadata["quality_score"], dg.FloatMetadataValue)
    assert metadata["quality_score"].value == pytest.approx(833 / 834, abs=1e-4)
    assert metadata["flagged_spike"].value == 1
    assert "08:00:00" in metadata["failed_rows"].value
    assert "spike" in metadata["failed_rows"].value

    spikes = evaluations(sample.instance, "spikes")
    assert len(spikes) == len(SAMPLE_SESSIONS)
    [failed] = [evaluation for evaluation in spikes if not evaluation.passed]
    assert failed.severity == dg.AssetCheckSeverity.WARN
    assert failed.metadata["offending_partitions"].value == "2014-06-09|AAPL"
    assert "645.57" in failed.metadata["offending_rows"].value


def test_every_real_day_passes_the_gate_and_gets_candles(sample: Warehouse) -> None:
    keys = {
        f"{day.isoformat()}|{ticker}"
        for tickers, start, end in SAMPLE_SESSIONS
        for ticker in tickers
        for day in runs.day_range(start, end)
    }
    gate = latest_evaluations(sample.instance, "quality_score")
    assert set(gate) == keys
    assert all(evaluation.passed for evaluation in gate.values())
    assert sample.instance.get_materialized_partitions(CANDLES) == keys
    closed_day = partition_metadata(sample.instance, VALIDATED, "2013-10-05|SPY")
    assert closed_day["status"].value == "market closed"
    assert "quality_score" not in closed_day
    gaps = evaluations(sample.instance, "gaps")
    assert len(gaps) == len(SAMPLE_SESSIONS)
    assert all(evaluation.passed for evaluation in gaps), "the early close is not a gap"
    assert all(evaluation.passed for evaluation in evaluations(sample.instance, "stale_runs"))
