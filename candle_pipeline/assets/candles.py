"""`candles`: OHLCV aggregates of the valid regular-session bars of ticker-days that passed the
quality gate.

The gate is per ticker-day: a ticker-day whose latest quality score (`market.quality_reports`) is
below the threshold, or that has no score, is not written and gets no materialisation (an
observation says why); the others of the same run are built as usual. When any ticker-day was
blocked the step fails afterwards, naming them, so the run shows the data problem. A blocked
ticker-day keeps the candles of its last good validation, if it had any.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from candle_pipeline.assets.quotes import TIMINGS_INPUT, per_ticker_asset, rows_by_partition
from candle_pipeline.assets.types import CANDLES_TYPE
from candle_pipeline.checks.quality import named
from candle_pipeline.domain.candles import aggregate
from candle_pipeline.domain.quality import GateDecision, gate
from candle_pipeline.domain.schemas import CandlesSchema
from candle_pipeline.domain.sessions import SESSION_REGULAR, attach_sessions
from candle_pipeline.partitions import TickerDay, parse_ticker_days
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.settings import CANDLE_INTERVALS
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES

CANDLES = dg.AssetKey("candles")
# Metadata key of the failure that names blocked ticker-days (the alert sensor recognises it).
BLOCKED_KEY = "blocked_partitions"


@per_ticker_asset(
    ins={"market_timings": TIMINGS_INPUT}, output_required=False, dagster_type=CANDLES_TYPE
)
def candles(
    context: dg.AssetExecutionContext,
    watchlist: WatchlistResource,
    quality: QualityResource,
    validated_quotes: pd.DataFrame,
    market_timings: pd.DataFrame,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """5m, 15m, 30m, 1h and 1d candles, bucket start in UTC, anchored at the session open."""
    ticker_days = parse_ticker_days(context.partition_keys)
    threshold = quality.quality_threshold
    decisions = gate(ticker_days, quality.latest_reports(ticker_days), threshold)
    allowed = [td for td in ticker_days if decisions[td].allowed]
    blocked = [td for td in ticker_days if not decisions[td].allowed]

    partition = pd.MultiIndex.from_frame(validated_quotes[["trade_date", "ticker"]])
    wanted = pd.MultiIndex.from_tuples(
        [(pd.Timestamp(td.trade_date), td.ticker) for td in allowed], names=["trade_date", "ticker"]
    )
    usable = validated_quotes[
        (validated_quotes["session"] == SESSION_REGULAR)
        & validated_quotes["is_valid"]
        & partition.isin(wanted)
    ]
    with_sessions = attach_sessions(usable, market_timings, watchlist.exchanges())
    result = CandlesSchema.validate(aggregate(with_sessions, CANDLE_INTERVALS))
    spec = TABLES[CANDLES.path[-1]]
    written = quality.warehouse.run(
        lambda conn: replace_partitions(conn, spec, [tuple(td) for td in allowed], result)
    )
    context.log.info(f"{written} candle rows written to {spec.table.fullname}")

    rows = rows_by_partition(result)
    for td in allowed:
        yield dg.AssetMaterialization(
            asset_key=CANDLES,
            partition=td.key,
            metadata={
                "rows": rows.get(td, 0),
                "table": spec.table.fullname,
                "quality_gate": decisions[td].reason,
            },
        )
    for td in blocked:
        yield dg.AssetObservation(
            asset_key=CANDLES,
            partition=td.key,
            metadata={"status": "blocked by the quality gate", "reason": decisions[td].reason},
        )
    if blocked:
        raise dg.Failure(
            description=(
                f"{len(blocked)} ticker-day(s) blocked by the quality gate (threshold "
                f"{threshold}); their candles were not built: {named([td.key for td in blocked])}"
            ),
            metadata={BLOCKED_KEY: dg.MetadataValue.md(_blocked_table(blocked, decisions))},
        )


def _blocked_table(blocked: list[TickerDay], decisions: dict[TickerDay, GateDecision]) -> str:
    return pd.DataFrame(
        {
            "partition": [td.key for td in blocked],
            "reason": [decisions[td].reason for td in blocked],
        }
    ).to_markdown(index=False)
