"""new_tickers_sensor evaluated against a real Dagster instance and warehouse on Postgres."""

import time
from datetime import date, timedelta

import dagster as dg
import pytest

from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for, ensure_tables
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.sensors.new_tickers import new_tickers_sensor
from candle_pipeline.settings import DEFAULT_BACKFILL_LOOKBACK_DAYS, SP500_CONSTITUENTS
from candle_pipeline.warehouse import watchlist

PER_TICKER = ("raw_quotes", "validated_quotes", "candles")


@pytest.fixture
def resource(warehouse_url: str) -> WatchlistResource:
    ensure_tables(warehouse_url)
    return WatchlistResource(
        warehouse=WarehouseResource(database_url=warehouse_url), default_exchange="XNYS"
    )


def watch(resource: WatchlistResource, *entries: watchlist.NewTicker) -> None:
    with engine_for(resource.warehouse.database_url).begin() as connection:
        watchlist.add(connection, entries, "XNYS")


def evaluate(instance: dg.DagsterInstance, resource: WatchlistResource, cursor: str | None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"watchlist": resource}
    ) as context:
        return new_tickers_sensor(context)


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with the tick's partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def last_day() -> date:
    return date.today() - timedelta(days=1)


def test_a_new_ticker_gets_its_partition_and_one_backfill(
    instance: dg.DagsterInstance, resource: WatchlistResource
) -> None:
    watch(
        resource,
        watchlist.NewTicker("NVDA"),
        watchlist.NewTicker("IBM", history_start=date(2013, 10, 1)),
    )
    first = evaluate(instance, resource, None)

    [partitions_request] = first.dynamic_partitions_requests
    assert partitions_request.partitions_def_name == TICKERS_PARTITION_NAME
    assert sorted(partitions_request.partition_keys) == ["IBM", "NVDA"]
    [backfill] = first.run_requests
    assert backfill.requires_backfill_daemon()
    subset = backfill.asset_graph_subset
    assert {key.path[-1] for key in subset.asset_keys} == {"market_timings", *PER_TICKER}
    for name in PER_TICKER:
        keys = set(subset.partitions_subsets_by_asset_key[dg.AssetKey(name)].get_partition_keys())
        nvda_start = date.today() - timedelta(days=DEFAULT_BACKFILL_LOOKBACK_DAYS)
        nvda_days = (last_day() - nvda_start).days + 1
        ibm_days = (last_day() - date(2013, 10, 1)).days + 1
        assert len(keys) == nvda_days + ibm_days
        assert f"{nvda_start.isoformat()}|NVDA" in keys
        assert f"{(nvda_start - timedelta(days=1)).isoformat()}|NVDA" not in keys
        assert f"{last_day().isoformat()}|NVDA" in keys
        assert "2013-10-01|IBM" in keys
    timings = subset.partitions_subsets_by_asset_key[dg.AssetKey("market_timings")]
    assert "2013-10-01" in set(timings.get_partition_keys())

    apply(instance, first)
    second = evaluate(instance, resource, first.cursor)
    assert not second.run_requests
    assert not second.dynamic_partitions_requests

    # Even if the partitions had not been applied yet, the cursor stops a second request.
    again = evaluate(dg.DagsterInstance.ephemeral(), resource, first.cursor)
    assert not again.run_requests


def test_an_inactive_ticker_is_not_requested(instance, resource: WatchlistResource) -> None:
    watch(resource, watchlist.NewTicker("SPY"))
    with engine_for(resource.warehouse.database_url).begin() as connection:
        watchlist.deactivate(connection, ["SPY"])
    result = evaluate(instance, resource, None)
    assert not result.run_requests


def test_the_sp500_in_one_tick(
    instance: dg.DagsterInstance, resource: WatchlistResource, record_property
) -> None:
    watch(resource, *watchlist.read_sp500(str(SP500_CONSTITUENTS)))
    started = time.perf_counter()
    result = evaluate(instance, resource, None)
    duration = time.perf_counter() - started
    record_property("sp500_sensor_tick_seconds", round(duration, 2))
    print(f"S&P 500 sensor tick: {duration:.2f} s")
    [request] = result.dynamic_partitions_requests
    assert len(request.partition_keys) == 503
    assert "BRK-B" in request.partition_keys
    [backfill] = result.run_requests
    raw = backfill.asset_graph_subset.partitions_subsets_by_asset_key[dg.AssetKey("raw_quotes")]
    days = DEFAULT_BACKFILL_LOOKBACK_DAYS - (date.today() - last_day()).days + 1
    assert len(raw) == 503 * days


def test_a_ticker_the_provider_places_elsewhere_is_moved_and_backfilled_again(
    instance: dg.DagsterInstance, resource: WatchlistResource
) -> None:
    watch(resource, watchlist.NewTicker("NVDA"), watchlist.NewTicker("IBM", exchange="XNYS"))
    first = evaluate(instance, resource, None)
    apply(instance, first)
    with engine_for(resource.warehouse.database_url).begin() as connection:
        watchlist.record_provider_exchanges(connection, {"NVDA": "NMS", "IBM": "NMS"})

    moved = evaluate(instance, resource, first.cursor)
    assert not moved.dynamic_partitions_requests
    [backfill] = moved.run_requests
    raw = backfill.asset_graph_subset.partitions_subsets_by_asset_key[dg.AssetKey("raw_quotes")]
    assert {key.split("|")[1] for key in raw.get_partition_keys()} == {"NVDA"}
    assert resource.exchanges().mic_for("NVDA") == "XNAS"
    assert resource.exchanges_in_use() == ["XNAS", "XNYS"]
    assert resource.exchanges().mic_for("IBM") == "XNYS", "a listed exchange stays"

    settled = evaluate(instance, resource, moved.cursor)
    assert not settled.run_requests
