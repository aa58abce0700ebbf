"""What a run left behind: quality reports, check evaluations and materialisation metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from candle_pipeline.resources.warehouse import engine_for

VALIDATED = dg.AssetKey("validated_quotes")
CANDLES = dg.AssetKey("candles")


def quality_reports(warehouse_url: str) -> pd.DataFrame:
    """market.quality_reports indexed by ticker-day (`2013-10-07|SPY`)."""
    with engine_for(warehouse_url).connect() as conn:
        frame = pd.read_sql(
            sa.text("SELECT * FROM market.quality_reports ORDER BY ticker, trade_date"), conn
        )
    return frame.set_index(frame["trade_date"].astype(str) + "|" + frame["ticker"])


def evaluations(
    instance: dg.DagsterInstance, check: str, asset: dg.AssetKey = VALIDATED
) -> list[dg.AssetCheckEvaluation]:
    """Every evaluation of a check, newest first."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(asset, check), limit=1000
    )
    return [
        record.event.dagster_event.event_specific_data
        for record in history
        if record.event is not None
        and isinstance(record.event.dagster_event.event_specific_data, dg.AssetCheckEvaluation)
    ]


def latest_evaluations(
    instance: dg.DagsterInstance, check: str, asset: dg.AssetKey = VALIDATED
) -> dict[str | None, dg.AssetCheckEvaluation]:
    """The latest evaluation of each partition (None: an unpartitioned check's)."""
    latest: dict[str | None, dg.AssetCheckEvaluation] = {}
    for evaluation in evaluations(instance, check, asset):
        latest.setdefault(evaluation.partition, evaluation)
    return latest


def partition_metadata(instance: dg.DagsterInstance, asset: dg.AssetKey, key: str) -> dict:
    """The metadata of a partition's latest materialisation."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[key]), limit=1
    ).records
    return record.asset_materialization.metadata
