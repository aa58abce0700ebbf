"""Which ticker-days a day holds, which a run fetches, and the state each attempt leaves."""

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from candle_pipeline.domain import ticker_days as td
from candle_pipeline.domain.sessions import MissingTimingsError, market_timings

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FRIDAY, SATURDAY, SUNDAY, MONDAY = (date(2013, 10, day) for day in (4, 5, 6, 7))
WEEKEND = [FRIDAY, SATURDAY, SUNDAY, MONDAY]
TIMINGS = market_timings(["XNYS", "XNAS"], FRIDAY, MONDAY)
RUN = "run-1"
RETRIES = td.FailedRetries(timedelta(hours=1), attempts=5)


def watch(*rows: tuple[str, str, date, date | None]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(td.WATCH_COLUMNS))


def state(ticker: str, day: date, status: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ticker": ticker,
        "trade_date": pd.Timestamp(day),
        "exchange": "XNYS",
        "status": status,
        "attempts": 1,
        "last_error": None,
        "retry_after": None,
        "quality_score": 1.0 if status == td.COMPLETE else None,
        "rows": 390 if status == td.COMPLETE else 0,
        "spike_rows": 0,
        "stale_rows": 0,
        "gaps": 0,
        "source": "csv" if status == td.COMPLETE else None,
        "fetched_at": NOW - timedelta(days=1) if status == td.COMPLETE else None,
        "last_bar_at": None,
        "updated_at": NOW - timedelta(days=1),
        "run_id": "run-0",
        "fallback_reason": None,
    }
    return {**row, **values}


def states(*rows: dict[str, object]) -> pd.DataFrame:
    if not rows:
        return td.empty_states()
    return td.conform_states(pd.DataFrame(list(rows)))


def stored(*keys: tuple[date, str], passed: bool = True) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_date": pd.to_datetime([day for day, _ in keys]),
            "ticker": [ticker for _, ticker in keys],
            "rows": 390,
            "source": "csv",
            "fetched_at": pd.Timestamp(NOW),
            "last_bar_at": pd.to_datetime([day for day, _ in keys]).tz_localize(UTC),
            "quality_score": 1.0 if passed else 0.5,
            "spike_rows": 0,
            "stale_rows": 2,
            "gaps": 0,
            "passed": passed,
            "verdict": "quality score 1.0000 >= threshold 0.8"
            if passed
            else "quality score 0.5000 < threshold 0.8",
        }
    )


def actions_of(plan: td.WorkPlan) -> dict[tuple[date, str], str]:
    frame = plan.ticker_days
    keys = zip(frame["trade_date"].dt.date, frame["ticker"], strict=True)
    return dict(zip(keys, frame["action"], strict=True))


def test_a_ticker_counts_from_its_history_start_until_its_removal() -> None:
    watched = watch(
        ("SPY", "XNYS", SATURDAY, None),
        ("IBM", "XNYS", FRIDAY, SUNDAY),
        ("NVDA", "XNAS", MONDAY, None),
    )
    expected = td.expected_ticker_days(watched, WEEKEND)
    pairs = set(zip(expected["trade_date"].dt.date, expected["ticker"], strict=True))
    assert pairs == {
        (SATURDAY, "SPY"),
        (SUNDAY, "SPY"),
        (MONDAY, "SPY"),
        (FRIDAY, "IBM"),
        (SATURDAY, "IBM"),
        (MONDAY, "NVDA"),
    }
    only_spy = td.expected_ticker_days(watched, WEEKEND, ["SPY"])
    assert set(only_spy["ticker"]) == {"SPY"}
    assert set(expected.loc[expected["ticker"] == "NVDA", "exchange"]) == {"XNAS"}


def test_closed_days_cost_no_call_and_open_ones_are_fetched_in_order() -> None:
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", FRIDAY, None)), WEEKEND)
    plan = td.plan_work(expected, TIMINGS, states(), NOW)
    assert actions_of(plan) == {
        (FRIDAY, "SPY"): td.FETCH,
        (SATURDAY, "SPY"): td.MARK_CLOSED,
        (SUNDAY, "SPY"): td.MARK_CLOSED,
        (MONDAY, "SPY"): td.FETCH,
    }
    assert plan.to_fetch() == {"SPY": [FRIDAY, MONDAY]}


def test_complete_and_closed_days_are_settled_unless_refetched() -> None:
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", FRIDAY, None)), WEEKEND)
    known = states(
        state("SPY", FRIDAY, td.COMPLETE),
        state("SPY", SATURDAY, td.CLOSED),
        state("SPY", MONDAY, td.BLOCKED),
    )
    plan = td.plan_work(expected, TIMINGS, known, NOW)
    assert plan.to_fetch() == {"SPY": [MONDAY]}, "blocked is fetched again, complete is not"
    assert actions_of(plan)[(SATURDAY, "SPY")] == td.SETTLED
    assert actions_of(plan)[(SUNDAY, "SPY")] == td.MARK_CLOSED
    refetched = td.plan_work(expected, TIMINGS, known, NOW, refetch=True)
    assert refetched.to_fetch() == {"SPY": [FRIDAY, MONDAY]}
    assert actions_of(refetched)[(SATURDAY, "SPY")] == td.SETTLED


def test_a_day_judged_on_another_exchange_is_not_settled() -> None:
    expected = td.expected_ticker_days(watch(("NVDA", "XNAS", FRIDAY, None)), [FRIDAY])
    plan = td.plan_work(expected, TIMINGS, states(state("NVDA", FRIDAY, td.COMPLETE)), NOW)
    assert plan.to_fetch() == {"NVDA": [FRIDAY]}


def test_a_retry_waits_for_its_retry_after() -> None:
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", FRIDAY, None)), [FRIDAY, MONDAY])
    known = states(
        state("SPY", FRIDAY, td.RETRY_LATER, retry_after=NOW + timedelta(minutes=5)),
        state("SPY", MONDAY, td.RETRY_LATER, retry_after=NOW - timedelta(minutes=5)),
    )
    plan = td.plan_work(expected, TIMINGS, known, NOW)
    assert actions_of(plan)[(FRIDAY, "SPY")] == td.WAITING
    assert plan.to_fetch() == {"SPY": [MONDAY]}
    assert td.plan_work(expected, TIMINGS, known, NOW, refetch=True).to_fetch() == {
        "SPY": [FRIDAY, MONDAY]
    }


def test_a_day_without_timings_is_refused_by_name() -> None:
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", FRIDAY, None)), [date(2013, 10, 8)])
    with pytest.raises(MissingTimingsError, match="XNYS on 2013-10-08"):
        td.plan_work(expected, TIMINGS, states(), NOW)


def test_each_outcome_becomes_its_status() -> None:
    watched = watch(
        ("SPY", "XNYS", FRIDAY, None),
        ("BAD", "XNYS", FRIDAY, None),
        ("ZZZ", "XNYS", FRIDAY, None),
        ("EMPTY", "XNYS", FRIDAY, None),
        ("LOW", "XNYS", FRIDAY, None),
    )
    known = states(state("ZZZ", FRIDAY, td.FAILED, attempts=3))
    plan = td.plan_work(td.expected_ticker_days(watched, [FRIDAY, SATURDAY]), TIMINGS, known, NOW)
    later = NOW + timedelta(seconds=90)
    outcome = td.Outcome(
        stored=pd.concat([stored((FRIDAY, "SPY")), stored((FRIDAY, "LOW"), passed=False)]),
        failures={
            "BAD": td.Failure(td.RETRY_LATER, "HTTP 429", later),
            "ZZZ": td.Failure(td.FAILED, "unknown symbol"),
        },
        attempted=True,
        source="csv",
        failed_retries=RETRIES,
    )
    new = td.settle(plan, outcome, RUN, NOW).set_index(["ticker", "trade_date"])
    friday, saturday = pd.Timestamp(FRIDAY), pd.Timestamp(SATURDAY)
    assert new.loc[("SPY", friday), ["status", "rows", "quality_score", "stale_rows"]].tolist() == [
        td.COMPLETE,
        390,
        1.0,
        2,
    ]
    low = new.loc[("LOW", friday)]
    assert (low["status"], low["last_error"]) == (
        td.BLOCKED,
        "quality score 0.5000 < threshold 0.8",
    )
    bad = new.loc[("BAD", friday)]
    assert (bad["status"], bad["last_error"], bad["retry_after"]) == (
        td.RETRY_LATER,
        "HTTP 429",
        pd.Timestamp(later),
    )
    zzz = new.loc[("ZZZ", friday)]
    assert (zzz["status"], zzz["attempts"]) == (td.FAILED, 4)
    assert zzz["retry_after"] == pd.Timestamp(NOW + timedelta(hours=8)), "1, 2, 4, 8 hours"
    empty = new.loc[("EMPTY", friday)]
    assert (empty["status"], empty["last_error"]) == (td.NO_DATA, "no data from csv")
    assert set(new.xs(saturday, level="trade_date")["status"]) == {td.CLOSED}
    assert set(new["run_id"]) == {RUN}
    assert list(td.settle(plan, outcome, RUN, NOW).columns) == list(td.STATE_COLUMNS)


def test_a_failed_attempt_keeps_what_is_stored() -> None:
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", FRIDAY, None)), [FRIDAY])
    known = states(state("SPY", FRIDAY, td.COMPLETE, quality_score=0.97, rows=388))
    plan = td.plan_work(expected, TIMINGS, known, NOW, refetch=True)
    outcome = td.Outcome(
        stored=stored(),
        failures={"SPY": td.Failure(td.FAILED, "HTTP 500")},
        attempted=True,
        source="yahoo",
        failed_retries=RETRIES,
    )
    [row] = td.settle(plan, outcome, RUN, NOW).to_dict("records")
    assert (row["status"], row["attempts"], row["last_error"]) == (td.FAILED, 2, "HTTP 500")
    assert (row["quality_score"], row["rows"], row["source"]) == (0.97, 388, "csv")


def test_processing_stored_rows_again_leaves_the_days_without_rows_alone() -> None:
    expected = td.expected_ticker_days(
        watch(("SPY", "XNYS", FRIDAY, None), ("IBM", "XNYS", FRIDAY, None)), [FRIDAY]
    )
    known = states(state("IBM", FRIDAY, td.NO_DATA))
    plan = td.plan_work(expected, TIMINGS, known, NOW, refetch=True)
    outcome = td.Outcome(
        stored((FRIDAY, "SPY")), {}, attempted=False, source="csv", failed_retries=RETRIES
    )
    new = td.settle(plan, outcome, RUN, NOW)
    assert new[["ticker", "status", "attempts"]].values.tolist() == [["SPY", td.COMPLETE, 0]]
    final = td.final_states(plan, new).set_index("ticker")
    assert final.loc["IBM", "status"] == td.NO_DATA


def test_a_refused_ticker_day_is_retried_a_few_times_with_a_doubling_wait() -> None:
    attempts = pd.Series([1, 2, 4, 5])
    waits = RETRIES.retry_after(NOW, attempts) - pd.Timestamp(NOW)
    assert waits.iloc[:3].tolist() == [timedelta(hours=h) for h in (1, 2, 8)]
    assert pd.isna(waits.iloc[3]), "five attempts, then it waits for a person or a run"


def test_the_days_of_a_run_naming_one_ticker_still_count_every_ticker() -> None:
    watched = watch(("SPY", "XNYS", FRIDAY, None), ("IBM", "XNYS", FRIDAY, None))
    known = states(state("SPY", FRIDAY, td.FAILED))
    every = td.plan_work(td.expected_ticker_days(watched, [FRIDAY, SATURDAY]), TIMINGS, known, NOW)
    final = td.final_states(every, td.empty_states()).set_index(["ticker", "trade_date"])
    assert final.loc[("SPY", pd.Timestamp(FRIDAY)), "status"] == td.FAILED, "as stored"
    assert final.loc[("IBM", pd.Timestamp(FRIDAY)), "status"] == td.NOT_FETCHED
    assert final.loc[("IBM", pd.Timestamp(SATURDAY)), "status"] == td.CLOSED
    summary = td.day_summary(final.reset_index()).loc[pd.Timestamp(FRIDAY)]
    assert (summary["expected"], summary[td.NOT_FETCHED], summary[td.FAILED]) == (2, 1, 1)


def test_a_day_summary_counts_statuses_and_scores() -> None:
    final = states(
        state("SPY", FRIDAY, td.COMPLETE, quality_score=0.9),
        state("IBM", FRIDAY, td.BLOCKED, quality_score=0.5),
        state("BAD", FRIDAY, td.FAILED),
        state("SPY", SATURDAY, td.CLOSED),
    )
    summary = td.day_summary(final)
    friday = summary.loc[pd.Timestamp(FRIDAY)]
    assert (friday["expected"], friday[td.COMPLETE], friday[td.BLOCKED], friday[td.FAILED]) == (
        3,
        1,
        1,
        1,
    )
    assert (friday["quality_score_min"], friday["quality_score_mean"]) == (0.5, 0.7)
    assert pd.isna(summary.loc[pd.Timestamp(SATURDAY), "quality_score_min"])


def test_a_day_whose_session_is_open_is_provisional_and_resumes_after_its_last_bar() -> None:
    """SPY on Monday 2013-10-07 (XNYS, 13:30-20:00 UTC), refreshed at 12:00 New York."""
    noon = datetime(2013, 10, 7, 16, 0, tzinfo=UTC)
    after_close = datetime(2013, 10, 7, 20, 30, tzinfo=UTC)
    last_bar = pd.Timestamp("2013-10-07 15:59", tz="UTC")
    expected = td.expected_ticker_days(watch(("SPY", "XNYS", MONDAY, None)), [MONDAY])

    first = td.plan_work(expected, TIMINGS, states(), noon)
    assert first.resume_after() == {}, "nothing stored yet: the whole day so far"
    outcome = td.Outcome(stored((MONDAY, "SPY")), {}, True, "yahoo", RETRIES)
    [row] = td.settle(first, outcome, RUN, noon).to_dict("records")
    assert row["status"] == td.IN_PROGRESS
    assert row["last_bar_at"] == pd.Timestamp(MONDAY, tz="UTC")

    provisional = states(state("SPY", MONDAY, td.IN_PROGRESS, last_bar_at=last_bar, rows=150))
    again = td.plan_work(expected, TIMINGS, provisional, noon)
    assert actions_of(again) == {(MONDAY, "SPY"): td.FETCH}
    assert again.resume_after() == {"SPY": last_bar}
    refetched = td.plan_work(expected, TIMINGS, provisional, noon, refetch=True)
    assert refetched.resume_after() == {}, "refetch asks for the whole day"

    closed = td.plan_work(expected, TIMINGS, provisional, after_close)
    assert closed.resume_after() == {}, "after the close the whole day is asked again"
    [final] = td.settle(closed, outcome, RUN, after_close).to_dict("records")
    assert final["status"] == td.COMPLETE
