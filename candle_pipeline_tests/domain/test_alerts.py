from candle_pipeline.domain.alerts import FailedEvaluation, check_digest, run_alert

RUN_URL = "http://localhost:3000/runs/abc"


def failure(day: str, offending: str, count: int, score: float | None = None) -> FailedEvaluation:
    return FailedEvaluation(day, offending, count, score, f"{count} ticker-day(s) below 0.8")


def test_one_failed_day_names_its_ticker_days_score_and_result() -> None:
    alert = check_digest(
        asset="validated_quotes",
        check="quality_score",
        severity="ERROR",
        failures=[failure("2013-10-09", "SPY 0.4981", 1, 0.498105)],
        run_url=RUN_URL,
    )
    assert alert.title == "Check failed: validated_quotes / quality_score for 2013-10-09"
    assert dict(alert.facts) == {
        "Check": "validated_quotes / quality_score (ERROR)",
        "Days": "2013-10-09",
        "Ticker-days": "SPY 0.4981",
        "Lowest score": "0.4981",
        "Result": "1 ticker-day(s) below 0.8",
    }
    assert alert.markdown.splitlines()[-1] == f"[Open the run in Dagster]({RUN_URL})"
    assert alert.text.startswith("Check failed: validated_quotes / quality_score for 2013-10-09 |")


def test_many_failed_days_are_one_digest_with_the_first_ticker_days_and_the_total() -> None:
    days = [f"2024-01-{day:02d}" for day in range(2, 30)]
    failures = [
        failure(day, "AAA 0.1000, BBB 0.2000, CCC 0.3000, DDD 0.4000, EEE 0.5000 ... (7 in all)", 7)
        for day in days
    ]
    alert = check_digest(
        asset="validated_quotes",
        check="quality_score",
        severity="ERROR",
        failures=failures,
        run_url=RUN_URL,
    )
    facts = dict(alert.facts)
    assert alert.title == (
        "Check failed: validated_quotes / quality_score on 28 days (2024-01-02 .. 2024-01-29)"
    )
    assert (
        facts["Days"]
        == "2024-01-02, 2024-01-03, 2024-01-04, 2024-01-05, 2024-01-06 ... (28 in all)"
    )
    named, total = facts["Ticker-days"].split(" ... ")
    assert named.split(", ")[:6] == [
        "2024-01-02 AAA 0.1000",
        "2024-01-02 BBB 0.2000",
        "2024-01-02 CCC 0.3000",
        "2024-01-02 DDD 0.4000",
        "2024-01-02 EEE 0.5000",
        "2024-01-03 AAA 0.1000",
    ]
    assert len(named.split(", ")) == 10
    assert total == f"({28 * 7} in all)", "the total counts what each day's evaluation did not name"
    assert "Result" not in facts, "a digest has no single result"


def test_a_failed_run_names_its_partitions_and_a_shortened_error() -> None:
    alert = run_alert(
        job="market_data_job",
        partitions="2013-10-04 .. 2013-10-11",
        error="market_data: csv SPY: 10 rows share a timestamp\n" + "x" * 2000,
        run_url=RUN_URL,
    )
    facts = dict(alert.facts)
    assert facts["Partitions"] == "2013-10-04 .. 2013-10-11"
    assert facts["Error"].startswith("market_data: csv SPY: 10 rows share a timestamp x")
    assert len(facts["Error"]) == 500 and facts["Error"].endswith("...")
    assert alert.title == "Run failed: market_data_job"
