"""Point-in-time prices end to end on the bundled sample: AAPL's 7:1 split of 2014-06-09 read
raw, split-adjusted and total-return, as of days before and after it, from Python and from SQL
(real PostgreSQL, real Dagster runs)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from candle_pipeline import read, runs
from candle_pipeline.domain.adjustments import FACTOR_FILE_COLUMNS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import day_partitions
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import get_settings
from candle_pipeline_tests.conftest import (
    create_database,
    definitions_for,
    postgres_instance,
    table,
    watch,
)

pytestmark = pytest.mark.integration

# Two weeks around the split: daily bars, and minute bars from 06-05 to 06-09.
SPLIT_WEEKS = (date(2014, 6, 2), date(2014, 6, 13))
SPLIT_DAY = date(2014, 6, 9)
BEFORE_SPLIT = date(2014, 6, 6)
# AAPL's splits after the bars: 7:1 (2014) and 4:1 (2020).
LATER_SPLITS = 28.0
CENT = 0.01
CANDLES = dg.AssetKey("candles")


@dataclass
class Sample:
    url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def materialize(self, **kwargs: object) -> None:
        outcomes = runs.materialize(self.defs, self.instance, *SPLIT_WEEKS, **kwargs)
        assert all(o.success for o in outcomes), [o.error for o in outcomes]

    def candles(self, **kwargs: object) -> pd.DataFrame:
        return read.candles("AAPL", "1d", *SPLIT_WEEKS, database_url=self.url, **kwargs)


@pytest.fixture(scope="module")
def aapl(pg_server: LocalPostgres) -> Iterator[Sample]:
    with postgres_instance(pg_server) as instance:
        url = create_database(pg_server, "warehouse")
        watch(url, ["AAPL"], SPLIT_WEEKS[0], removed_on=SPLIT_WEEKS[1] + timedelta(days=1))
        sample = Sample(url, definitions_for(url, SAMPLE_DATA_DIR), instance)
        sample.materialize()
        yield sample


def first_seen(url: str) -> date:
    seen = table(url, "corporate_actions")["first_seen"]
    assert seen.nunique() == 1, "the whole factor file was stored by one run"
    return pd.Timestamp(seen.iloc[0]).date()


def closes(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index("trade_date")["close"]


def test_the_factor_file_is_stored_as_aapls_dated_actions(aapl: Sample) -> None:
    actions = table(aapl.url, "corporate_actions").set_index("ex_date")
    assert actions["split_ratio"].dropna().to_dict() == {
        date(2000, 6, 21): 2.0,
        date(2005, 2, 28): 2.0,
        date(2014, 6, 9): 7.0,
        date(2020, 8, 31): 4.0,
    }
    assert actions.loc[date(2014, 5, 8), "dividend"] == pytest.approx(3.29, abs=CENT)
    assert set(actions["currency"]) == {"USD"}
    assert set(actions["source"]) == {"csv"}
    factors = table(aapl.url, "adjustment_factors").set_index("ex_date")
    assert factors.loc[SPLIT_DAY, "price_factor"] == pytest.approx(LATER_SPLITS)
    assert factors.loc[SPLIT_DAY, "volume_factor"] == pytest.approx(LATER_SPLITS)


def test_raw_candles_are_read_exactly_as_stored(aapl: Sample) -> None:
    raw = aapl.candles()
    stored = table(aapl.url, "candles")
    stored = stored[stored["interval"] == "1d"].sort_values("ts")
    assert raw["close"].tolist() == stored["close"].tolist()
    assert [d.date() for d in raw["trade_date"]] == stored["trade_date"].tolist()
    assert str(raw["ts"].dt.tz) == "UTC"
    before, after = closes(raw)[pd.Timestamp(BEFORE_SPLIT)], closes(raw)[pd.Timestamp(SPLIT_DAY)]
    assert before / after == pytest.approx(7.0, rel=0.02), "raw: the split shows as traded"


def test_as_of_a_day_before_the_split_reads_the_unadjusted_series(aapl: Sample) -> None:
    raw = aapl.candles()
    pd.testing.assert_frame_equal(aapl.candles(adjust="splits", as_of=BEFORE_SPLIT), raw)
    # After the ex-date but before the warehouse first saw the split: still unadjusted.
    unseen = first_seen(aapl.url) - timedelta(days=1)
    pd.testing.assert_frame_equal(aapl.candles(adjust="splits", as_of=unseen), raw)


def test_as_of_a_day_after_the_split_was_seen_reads_the_adjusted_series(aapl: Sample) -> None:
    raw = closes(aapl.candles())
    adjusted = closes(aapl.candles(adjust="splits", as_of=first_seen(aapl.url)))
    assert adjusted[pd.Timestamp(BEFORE_SPLIT)] == pytest.approx(
        raw[pd.Timestamp(BEFORE_SPLIT)] / LATER_SPLITS
    )
    assert adjusted[pd.Timestamp(SPLIT_DAY)] == pytest.approx(raw[pd.Timestamp(SPLIT_DAY)] / 4)
    ratio = adjusted[pd.Timestamp(BEFORE_SPLIT)] / adjusted[pd.Timestamp(SPLIT_DAY)]
    assert ratio == pytest.approx(1.0, abs=0.02), "no jump across the split once adjusted"


def test_adjusted_closes_equal_leans_own_factors(aapl: Sample) -> None:
    factors = pd.read_csv(
        SAMPLE_DATA_DIR / "lean-daily" / "factor_files" / "AAPL.csv",
        names=list(FACTOR_FILE_COLUMNS),
    )
    factors["date"] = pd.to_datetime(factors["date"].astype(str), format="%Y%m%d")
    raw = aapl.candles()
    lean = pd.merge_asof(raw, factors, left_on="trade_date", right_on="date", direction="forward")
    np.testing.assert_allclose(
        aapl.candles(adjust="splits")["close"], lean["close"] * lean["split_factor"], atol=CENT
    )
    np.testing.assert_allclose(
        aapl.candles(adjust="all")["close"],
        lean["close"] * lean["split_factor"] * lean["price_factor"],
        atol=CENT,
    )


def test_sql_gives_the_same_adjusted_series_as_python(aapl: Sample) -> None:
    query = sa.text(
        "SELECT trade_date, split_close, tr_close, split_volume FROM market.candles_adjusted "
        "WHERE ticker = 'AAPL' AND interval = '1d' AND trade_date BETWEEN :first AND :last "
        "ORDER BY ts"
    )
    as_of_query = sa.text(
        "SELECT close / price_factor AS split_close FROM market.candles_adjusted_as_of(:day) "
        "WHERE ticker = 'AAPL' AND interval = '1d' AND trade_date BETWEEN :first AND :last "
        "ORDER BY ts"
    )
    first, last = SPLIT_WEEKS
    with engine_for(aapl.url).connect() as connection:
        view = pd.read_sql(query, connection, params={"first": first, "last": last})
        before = pd.read_sql(
            as_of_query, connection, params={"day": BEFORE_SPLIT, "first": first, "last": last}
        )
    splits, total = aapl.candles(adjust="splits"), aapl.candles(adjust="all")
    np.testing.assert_allclose(view["split_close"], splits["close"], rtol=1e-12)
    np.testing.assert_allclose(view["tr_close"], total["close"], rtol=1e-12)
    np.testing.assert_allclose(view["split_volume"], splits["volume"], rtol=1e-12)
    np.testing.assert_allclose(before["split_close"], aapl.candles()["close"], rtol=1e-12)


def test_refetching_after_the_split_is_known_stores_identical_raw_rows(aapl: Sample) -> None:
    raw_before = table(aapl.url, "raw_quotes").drop(columns=["fetched_at"])
    actions_before = table(aapl.url, "corporate_actions")[["ex_date", "first_seen"]]
    aapl.materialize(refetch=True)
    pd.testing.assert_frame_equal(
        table(aapl.url, "raw_quotes").drop(columns=["fetched_at"]), raw_before
    )
    actions_after = table(aapl.url, "corporate_actions")[["ex_date", "first_seen"]]
    pd.testing.assert_frame_equal(actions_after, actions_before, obj="first sightings kept")


def test_raw_bars_of_a_day_are_every_stored_minute(aapl: Sample) -> None:
    stored = table(aapl.url, "raw_quotes")
    day = stored[stored["trade_date"] == BEFORE_SPLIT].sort_values("ts")
    bars = read.bars("AAPL", "1m", BEFORE_SPLIT, BEFORE_SPLIT, database_url=aapl.url)
    assert bars["close"].tolist() == day["close"].tolist(), "pre- and post-market included"
    adjusted = read.bars(
        "AAPL", "1m", BEFORE_SPLIT, BEFORE_SPLIT, adjust="splits", database_url=aapl.url
    )
    np.testing.assert_allclose(adjusted["close"], bars["close"] / LATER_SPLITS)
    np.testing.assert_allclose(adjusted["volume"], bars["volume"] * LATER_SPLITS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": "2h"}, r"unknown candle interval '2h': choose one of 5m, 15m"),
        ({"start": "2014-06-13", "end": "2014-06-02"}, "end 2014-06-02 is before start"),
        ({"tickers": ["AAPL", "ZZZZ"]}, r"unknown ticker\(s\) ZZZZ: not on the watch list"),
        ({"adjust": "dividends"}, "adjust must be None, 'splits' or 'all'"),
        ({"start": "June 2"}, r"start must be a date \(YYYY-MM-DD\), not 'June 2'"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(
    aapl: Sample, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "tickers": ["AAPL"],
        "interval": "1d",
        "start": SPLIT_WEEKS[0],
        "end": SPLIT_WEEKS[1],
        **kwargs,
    }
    with pytest.raises(read.ReadError, match=message) as refused:
        read.candles(**arguments, database_url=aapl.url)
    assert "\n" not in str(refused.value)


def shaped_input_asset(metadata: dict[str, object]) -> dg.AssetsDefinition:
    """A user's own downstream asset reading `candles` through an `AssetIn` in `read`'s shapes;
    it reports what it received as its materialisation's metadata."""

    @dg.asset(
        partitions_def=day_partitions(get_settings()),
        ins={"candles": dg.AssetIn(key=CANDLES, metadata=metadata)},
    )
    def aapl_study(candles: pd.DataFrame) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={
                "columns": list(candles.columns),
                "rows": candles.to_json(orient="records", date_format="iso"),
            }
        )

    return aapl_study


def run_study(aapl: Sample, metadata: dict[str, object]) -> dg.ExecuteInProcessResult:
    study = shaped_input_asset(metadata)
    defs = dg.Definitions.merge(aapl.defs, dg.Definitions(assets=[study]))
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=aapl.instance,
        partition_key=SPLIT_DAY.isoformat(),
        asset_selection=[study.key],
        raise_on_error=False,
    )


def test_a_users_asset_reads_candles_in_the_readers_shapes(aapl: Sample) -> None:
    result = run_study(aapl, {"interval": "1d", "adjust": "splits", "tickers": ["AAPL"]})
    assert result.success
    [materialization] = result.asset_materializations_for_node("aapl_study")
    received = pd.read_json(io.StringIO(materialization.metadata["rows"].value), orient="records")
    expected = read.candles(
        "AAPL", "1d", SPLIT_DAY, SPLIT_DAY, adjust="splits", database_url=aapl.url
    )
    assert materialization.metadata["columns"].value == list(expected.columns)
    assert len(received) == 1
    assert received["close"].iloc[0] == pytest.approx(expected["close"].iloc[0])
    assert received["close"].iloc[0] == pytest.approx(93.70 / 4, abs=CENT)


def test_a_users_asset_with_a_bad_input_fails_in_one_line(aapl: Sample) -> None:
    result = run_study(aapl, {"interval": "2h"})
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("input candles: unknown candle interval '2h'")
    assert "\n" not in message
