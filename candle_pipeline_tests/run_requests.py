"""What schedules and sensors asked for, and what the runs they asked for cost."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from candle_pipeline import runs

RAW = dg.AssetKey("raw_quotes")


def _requests(asked: dg.SensorResult | Sequence[dg.RunRequest]) -> list[dg.RunRequest]:
    if isinstance(asked, dg.SensorResult):
        return list(asked.run_requests or [])
    return list(asked)


def plan(asked: dg.SensorResult | Sequence[dg.RunRequest]) -> list[tuple[str, str, list[str]]]:
    """(first day, last day, tickers) of each requested run."""
    return [
        (
            request.tags[runs.RANGE_START_TAG],
            request.tags[runs.RANGE_END_TAG],
            request.run_config["ops"]["market_data"]["config"]["tickers"],
        )
        for request in _requests(asked)
    ]


def keys(asked: dg.SensorResult | Sequence[dg.RunRequest]) -> list[str]:
    """The run key of each requested run."""
    return [request.run_key for request in _requests(asked)]


def provider_requests(instance: dg.DagsterInstance, run_id: str) -> int:
    """`run_provider_requests` of a run, which every day it materialised carries."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=RAW), limit=100)
    [requests] = {
        record.asset_materialization.metadata["run_provider_requests"].value
        for record in records.records
        if record.run_id == run_id
    }
    return requests


def raw_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    """The metadata of one `raw_quotes` materialisation of a run, as plain values."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW), limit=100
    ).records
    mine = [r for r in records if r.run_id == run_id]
    assert mine
    return {key: value.value for key, value in mine[0].asset_materialization.metadata.items()}
