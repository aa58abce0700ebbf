"""The one planner: a request (assets x days x run config, tags) becomes runs one way, whoever
asks; no database needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from candle_pipeline import runs
from candle_pipeline.partitions import DAILY_BARS_DAYS_PER_RUN, days_between

# Friday to Wednesday, then Friday: Thursday the 10th is left out.
DAYS = (*days_between(date(2013, 10, 4), date(2013, 10, 9)), date(2013, 10, 11))
ASKED_BY = {"candle/retry": "3"}


def spans(planned: list[runs.PlannedRun]) -> list[tuple[date, date]]:
    return [(run.span.first, run.span.last) for run in planned]


def test_consecutive_days_share_a_run_up_to_the_days_a_run_holds(
    days_per_run: Callable[[int], None],
) -> None:
    days_per_run(4)
    request = runs.WorkRequest(DAYS, tickers=("SPY",), tags=ASKED_BY)

    planned = runs.plan(request)

    assert spans(planned) == [
        (date(2013, 10, 4), date(2013, 10, 7)),
        (date(2013, 10, 8), date(2013, 10, 9)),
        (date(2013, 10, 11), date(2013, 10, 11)),
    ]
    for run in planned:
        assert run.assets == runs.ALL_ASSETS
        assert run.tags == {**ASKED_BY, **run.span.tags}
        assert run.run_config["ops"][runs.MARKET_DATA_OP]["config"] == {
            "tickers": ["SPY"],
            "refetch": False,
        }


def test_market_timings_alone_take_a_year_per_run_and_no_market_data_config(
    days_per_run: Callable[[int], None],
) -> None:
    days_per_run(4)
    first = date(2012, 1, 1)
    request = runs.WorkRequest.between(
        first, first + timedelta(days=DAILY_BARS_DAYS_PER_RUN), assets=["market_timings"]
    )

    planned = runs.plan(request)

    assert [len(days_between(*span)) for span in spans(planned)] == [DAILY_BARS_DAYS_PER_RUN, 1]
    assert all("ops" not in run.run_config for run in planned)


def test_run_requests_carry_the_plan_under_keys_of_their_days() -> None:
    moment = datetime(2025, 2, 3, 15, tzinfo=UTC)
    request = runs.WorkRequest(
        (date(2025, 2, 3),),
        assets=("candles", "validated_quotes"),
        tickers=("IBM",),
        refetch=True,
        as_of=moment,
        tags=ASKED_BY,
    )

    [asked] = runs.run_requests(request, key="why")
    [planned] = runs.plan(request)

    assert asked.run_key == "why:2025-02-03:2025-02-03"
    assert asked.asset_selection == [dg.AssetKey("validated_quotes"), dg.AssetKey("candles")]
    assert asked.run_config == planned.run_config
    assert asked.run_config["ops"][runs.MARKET_DATA_OP]["config"] == {
        "tickers": ["IBM"],
        "refetch": True,
        "as_of": moment.isoformat(),
    }
    assert asked.tags == planned.tags


def test_a_request_the_partitions_cannot_hold_is_refused_asset_first() -> None:
    with pytest.raises(runs.RunRequestError, match="unknown asset"):
        runs.WorkRequest.between(date(2013, 10, 8), date(2013, 10, 4), assets=["bars"])
    with pytest.raises(runs.RunRequestError, match="reversed"):
        runs.WorkRequest.between(date(2013, 10, 8), date(2013, 10, 4))
    with pytest.raises(runs.RunRequestError, match="before the first partition"):
        runs.WorkRequest.between(date(1999, 12, 31), date(2013, 10, 4))
