"""Each shipped asset body run on its own against the real warehouse resource on the test
PostgreSQL: what it returns, what it stores and the metadata it reports.

`market_timings` is invoked directly with `dg.build_asset_context`; the multi-asset
`market_data` runs with `dg.materialize_to_memory` (its outputs kept in memory, every other
resource the real one), since it reports per-day metadata (`add_asset_metadata` with a partition
key), which Dagster's directly invoked context does not support. The assets and resources come
from the loaded definitions, the bars from the bundled Lean sample (SPY, 2013-10-07).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline.domain.calendar_overrides import EARLY_CLOSE, CalendarOverride
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.warehouse import calendar_overrides
from candle_pipeline_tests.conftest import definitions_for, table, watch

FRIDAY, SUNDAY, MONDAY = date(2013, 10, 4), date(2013, 10, 6), date(2013, 10, 7)
# After the sample week, so every session of it is over for the run.
AS_OF = "2013-10-12T00:00:00+00:00"
SPY_MONDAY = SAMPLE_DATA_DIR / "lean-minute" / "SPY" / "2013-10-07.csv"
REGULAR_MINUTES = 390
# Regular-session candles of a full day: 5m, 15m, 30m, 1h, 4h and 1d.
CANDLES_PER_FULL_DAY = {"5m": 78, "15m": 26, "30m": 13, "1h": 7, "4h": 2, "1d": 1}
# Eastern daylight time is UTC-4 in October 2013.
OPEN_UTC, CLOSE_UTC, EARLY_CLOSE_UTC = time(13, 30), time(20), time(17)


@pytest.fixture
def defs(warehouse_url: str) -> dg.Definitions:
    watch(warehouse_url, ["SPY"], FRIDAY)
    return definitions_for(warehouse_url)


def run_market_timings(defs: dg.Definitions, day: date) -> tuple[pd.DataFrame, dict]:
    """The body of `market_timings` on one day partition (a context built for direct invocation
    has one partition key: ranges of days run through `materialize` in the pipeline tests)."""
    # The definitions bind their resources to the asset: the context brings none of its own.
    with dg.build_asset_context(partition_key=day.isoformat()) as context:
        timings = defs.resolve_assets_def("market_timings")(context)
        return timings, dict(context.get_output_metadata("result"))


def test_market_timings_are_the_sessions_of_the_watched_exchanges(
    defs: dg.Definitions,
) -> None:
    timings, metadata = run_market_timings(defs, MONDAY)

    [monday] = timings.to_dict("records")
    assert (monday["mic"], monday["session_date"], monday["is_open"]) == (
        "XNYS",
        pd.Timestamp(MONDAY),
        True,
    )
    assert (monday["open_utc"].time(), monday["close_utc"].time()) == (OPEN_UTC, CLOSE_UTC)
    assert monday["expected_minute_bars"] == REGULAR_MINUTES
    assert metadata == {
        "exchanges": "XNYS",
        "first_day": MONDAY.isoformat(),
        "last_day": MONDAY.isoformat(),
        "open_sessions": 1,
        "early_closes": 0,
        "exchange_calendars_version": metadata["exchange_calendars_version"],
        "calendar_corrections": 0,
    }


def test_market_timings_of_a_weekend_day_are_closed(defs: dg.Definitions) -> None:
    timings, metadata = run_market_timings(defs, SUNDAY)

    [sunday] = timings.to_dict("records")
    assert (sunday["mic"], sunday["is_open"], sunday["expected_minute_bars"]) == ("XNYS", False, 0)
    assert pd.isna(sunday["open_utc"]) and pd.isna(sunday["close_utc"])
    assert metadata["open_sessions"] == 0


def test_market_timings_lay_the_warehouses_corrections_over_the_calendar(
    defs: dg.Definitions, warehouse_url: str
) -> None:
    correction = CalendarOverride("XNYS", MONDAY, EARLY_CLOSE, time(13), reason="drill")
    with engine_for(warehouse_url).begin() as connection:
        calendar_overrides.record(connection, correction, "test", datetime(2013, 10, 1, tzinfo=UTC))

    timings, metadata = run_market_timings(defs, MONDAY)

    [monday] = timings.to_dict("records")
    assert monday["close_utc"].time() == EARLY_CLOSE_UTC
    assert bool(monday["early_close"])
    assert (metadata["early_closes"], metadata["calendar_corrections"]) == (1, 1)


def run_market_data_in_memory(
    defs: dg.Definitions, instance: dg.DagsterInstance, day: date
) -> dg.ExecuteInProcessResult:
    """`market_timings` and `market_data` of the loaded definitions on one day, their outputs
    kept in memory (`materialize_to_memory`: the multi-asset reports per-day metadata, which a
    directly invoked context cannot take) and every other resource the real one."""
    assets = [
        asset
        for asset in defs.assets or ()
        if isinstance(asset, dg.AssetsDefinition)
        and set(asset.keys) & {dg.AssetKey("market_timings"), dg.AssetKey("raw_quotes")}
    ]
    resources = {
        key: resource
        for key, resource in (defs.resources or {}).items()
        if not isinstance(resource, dg.ConfigurableIOManager | dg.IOManagerDefinition)
    }
    return dg.materialize_to_memory(
        assets,
        resources=resources,
        partition_key=day.isoformat(),
        run_config={"ops": {"market_data": {"config": {"as_of": AS_OF}}}},
        instance=instance,
    )


def spy_monday_bars() -> pd.DataFrame:
    """SPY's bars of the sample Monday read straight from the bundled file."""
    return pd.read_csv(SPY_MONDAY, parse_dates=["ts"])


def materialized(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    """The metadata of the one materialisation of `asset` in `result`, as plain values."""
    [event] = [
        m
        for m in result.asset_materializations_for_node("market_data")
        if m.asset_key.path == [asset]
    ]
    assert event.partition == MONDAY.isoformat()
    return {name: value.value for name, value in event.metadata.items()}


def test_market_data_turns_a_sample_day_into_raw_validated_quotes_and_candles(
    defs: dg.Definitions, warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    result = run_market_data_in_memory(defs, instance, MONDAY)

    bars = spy_monday_bars()
    raw = result.output_for_node("market_data", "raw_quotes")
    assert set(raw["ticker"]) == {"SPY"} and set(raw["source"]) == {"csv"}
    pd.testing.assert_frame_equal(
        raw.loc[:, list(bars.columns)].reset_index(drop=True), bars, check_dtype=False
    )

    validated = result.output_for_node("market_data", "validated_quotes")
    regular = bars[(bars["ts"].dt.time >= OPEN_UTC) & (bars["ts"].dt.time < CLOSE_UTC)].reset_index(
        drop=True
    )
    assert len(validated) == len(bars)
    assert (validated["session"] == "regular").sum() == len(regular)
    assert validated["is_valid"].all()

    candles = result.output_for_node("market_data", "candles")
    assert candles.groupby("interval").size().to_dict() == CANDLES_PER_FULL_DAY
    [daily] = candles[candles["interval"] == "1d"].to_dict("records")
    assert (daily["open"], daily["high"], daily["low"], daily["close"], daily["volume"]) == (
        pytest.approx(regular["open"].iloc[0]),
        pytest.approx(regular["high"].max()),
        pytest.approx(regular["low"].min()),
        pytest.approx(regular["close"].iloc[-1]),
        pytest.approx(regular["volume"].sum()),
    )

    day = {
        "tickers_expected": 1,
        "tickers_complete": 1,
        "tickers_failed": 0,
        "quality_score_min": 1.0,
    }
    raw_metadata = materialized(result, "raw_quotes")
    assert raw_metadata | day == raw_metadata
    assert raw_metadata["rows_written"] == len(bars)
    assert raw_metadata["provider"] == "csv"
    assert raw_metadata["run_provider_requests"] == raw_metadata["run_requests_csv"] > 0
    assert materialized(result, "validated_quotes")["rows_written"] == len(bars)
    candles_metadata = materialized(result, "candles")
    assert candles_metadata["rows_written"] == sum(CANDLES_PER_FULL_DAY.values())
    assert candles_metadata["run_periods_without_candle"] == 1
    assert (
        "SPY 1w 2013-10-07: 4 days not materialised" in candles_metadata["periods_without_candle"]
    )

    checks = {
        (e.asset_key.to_user_string(), e.check_name): (e.passed, e.partition)
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("validated_quotes", "quality_score")] == (True, MONDAY.isoformat())
    assert checks[("raw_quotes", "coverage")] == (True, MONDAY.isoformat())

    [state] = table(warehouse_url, "ticker_days").to_dict("records")
    assert (state["ticker"], state["trade_date"], state["status"], state["rows"]) == (
        "SPY",
        MONDAY,
        "complete",
        len(bars),
    )
    assert (state["source"], state["quality_score"], state["run_id"]) == (
        "csv",
        1.0,
        result.run_id,
    )
    [report] = table(warehouse_url, "quality_reports").to_dict("records")
    assert (report["ticker"], report["passed"], report["regular_bars"]) == (
        "SPY",
        True,
        len(regular),
    )
    for output in ("raw_quotes", "validated_quotes", "candles"):
        assert table(warehouse_url, output).empty, (
            f"{output}: stored by the IO manager, not the body"
        )


def test_market_data_asks_nothing_again_for_a_complete_day(
    defs: dg.Definitions, warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    first = run_market_data_in_memory(defs, instance, MONDAY)
    again = run_market_data_in_memory(defs, instance, MONDAY)

    assert again.output_for_node("market_data", "raw_quotes").empty
    metadata = materialized(again, "raw_quotes")
    assert (metadata["run_provider_requests"], metadata["tickers_complete"]) == (0, 1)
    [state] = table(warehouse_url, "ticker_days").to_dict("records")
    assert (state["status"], state["run_id"]) == ("complete", first.run_id)
