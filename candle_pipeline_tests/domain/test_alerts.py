from candle_pipeline.domain.alerts import check_alert, run_alert, slack_payload

RUN_URL = "http://localhost:3000/runs/abc"


def test_a_failed_check_names_ticker_day_check_score_and_the_run() -> None:
    alert = check_alert(
        asset="validated_quotes",
        check="quality_score",
        severity="ERROR",
        description="quality score 0.4981 < threshold 0.8",
        ticker="SPY",
        day="2013-10-09",
        score=0.498105,
        run_url=RUN_URL,
    )
    payload = slack_payload(alert)
    assert payload["text"] == (
        "Check failed: validated_quotes / quality_score for SPY 2013-10-09 | "
        "Check: validated_quotes / quality_score (ERROR); Ticker: SPY; Day: 2013-10-09; "
        "Score: 0.4981; Result: quality score 0.4981 < threshold 0.8 | " + RUN_URL
    )
    [block] = payload["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    body = block["text"]["text"]
    assert "*Ticker:* SPY" in body and "*Score:* 0.4981" in body
    assert "0.4981 &lt; threshold" in body, "Slack's control characters are escaped"
    assert body.endswith(f"<{RUN_URL}|Open the run in Dagster>")


def test_a_failed_run_names_its_partitions_and_a_shortened_error() -> None:
    alert = run_alert(
        job="__ASSET_JOB",
        partitions="2013-10-04|SPY .. 2013-10-11|SPY",
        error="raw_quotes: csv SPY: 10 rows share a timestamp\n" + "x" * 2000,
        run_url=RUN_URL,
    )
    facts = dict(alert.facts)
    assert facts["Partitions"] == "2013-10-04|SPY .. 2013-10-11|SPY"
    assert facts["Error"].startswith("raw_quotes: csv SPY: 10 rows share a timestamp x")
    assert len(facts["Error"]) == 500 and facts["Error"].endswith("...")
    assert alert.title == "Run failed: __ASSET_JOB"
