"""The spike rule across corporate actions, end to end (real PostgreSQL, real Dagster runs): AAPL's
raw daily bars of the bundled sample around its 7:1 split of 2014-06-09, with a hand-made 60%
jump on 2014-06-12 that no action explains."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.warehouse.partition_store import qualified
from candle_pipeline.warehouse.tables import adjustment_factors
from candle_pipeline_tests.conftest import (
    create_database,
    definitions_for,
    postgres_instance,
    table,
    watch,
)
from candle_pipeline_tests.quality.corrupt import copy_daily

pytestmark = pytest.mark.integration

FIRST_DAY, LAST_DAY = date(2014, 6, 2), date(2014, 6, 13)
SPLIT_DAY = date(2014, 6, 9)
JUMP_DAY = date(2014, 6, 12)
# The hand-made jump: every price of the day 60% above what traded, with no action to explain it.
JUMP = 1.6
AS_OF = datetime(2014, 7, 1, tzinfo=UTC)
REVALIDATE = ("validated_quotes", "candles")


@dataclass
class Warehouse:
    url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def materialize(self, **kwargs: object) -> None:
        outcomes = runs.materialize(
            self.defs, self.instance, FIRST_DAY, LAST_DAY, as_of=AS_OF, **kwargs
        )
        assert all(o.success for o in outcomes), [o.error for o in outcomes]

    def day(self, trade_date: date) -> tuple[str, bool]:
        """The ticker-day's status and whether its daily bar is flagged as a spike."""
        states = table(self.url, "ticker_days").set_index("trade_date")
        bars = table(self.url, "validated_quotes").set_index("trade_date")
        return states.loc[trade_date, "status"], bool(bars.loc[trade_date, "flag_spike"])


def jump(bars: pd.DataFrame) -> None:
    """2014-06-12 made 60% higher by hand."""
    bars.loc[bars["date"] == JUMP_DAY.isoformat(), ["open", "high", "low", "close"]] *= JUMP


@pytest.fixture(scope="module")
def warehouse(
    pg_server: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    with postgres_instance(pg_server) as instance:
        url = create_database(pg_server, "warehouse")
        watch(url, ["AAPL"], FIRST_DAY, removed_on=LAST_DAY + timedelta(days=1))
        folder = copy_daily(tmp_path_factory.mktemp("spikes"), "AAPL", jump)
        store = Warehouse(url, definitions_for(url, folder), instance)
        store.materialize()
        yield store


def test_the_split_day_is_not_a_spike(warehouse: Warehouse) -> None:
    raw = table(warehouse.url, "raw_quotes").set_index("trade_date")["close"]
    assert raw[date(2014, 6, 6)] / raw[SPLIT_DAY] > JUMP, "the raw close falls by about 7"
    assert warehouse.day(SPLIT_DAY) == ("complete", False)


def test_an_unexplained_jump_is_still_a_spike(warehouse: Warehouse) -> None:
    assert warehouse.day(JUMP_DAY) == ("blocked", True)
    assert warehouse.day(date(2014, 6, 11)) == ("complete", False)


def test_validating_the_stored_rows_again_uses_the_stored_factor_table(
    warehouse: Warehouse,
) -> None:
    warehouse.materialize(select=REVALIDATE)
    assert warehouse.day(SPLIT_DAY) == ("complete", False)
    assert warehouse.day(JUMP_DAY) == ("blocked", True)

    with psycopg.connect(warehouse.url) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE ticker = %s").format(qualified(adjustment_factors)),
            ("AAPL",),
        )
    warehouse.materialize(select=REVALIDATE)
    assert warehouse.day(SPLIT_DAY) == ("blocked", True), "without its factor, the split is a jump"
