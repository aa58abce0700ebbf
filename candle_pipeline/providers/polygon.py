"""Polygon.io (now branded Massive): raw aggregates of US stocks over its REST API.

- Bars: `/v2/aggs/ticker/{T}/range/{n}/{timespan}/{from}/{to}` with `adjusted=false` (prices as
  traded, never split-adjusted), following `next_url` pages; or, for daily bars of many tickers,
  grouped daily `/v2/aggs/grouped/locale/us/market/stocks/{day}`: one request answers every US
  ticker of a day. A group fetch picks whichever needs fewer requests.
- Corporate actions: `/v3/reference/splits` and `/v3/reference/dividends` of the fetched days
  (per ticker, or for the whole market in grouped mode), following `next_url`.
- Time: Polygon stamps a daily bar at midnight New York time in range answers and at the
  close (16:00 New York) in grouped ones; both are stored at the session date's midnight in New
  York (the convention of Lean's daily files), so the DST change between two bars moves nothing.
- The API key travels in the `Authorization` header, never in a URL; 401 and 403 are a
  `ProviderSetupError` (the key or the plan), which stops the run with one clear line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import requests

from candle_pipeline.domain.bars import (
    BAR_COLUMNS,
    BarsError,
    check_bars,
    empty_bars,
    storable_rows,
)
from candle_pipeline.domain.corporate_actions import ACTION_COLUMNS, empty_actions
from candle_pipeline.providers.base import (
    CallStats,
    FetchResult,
    GroupFetch,
    ProviderError,
    ProviderSetupError,
    TransientProviderError,
    fetch_each,
)
from candle_pipeline.providers.http import FIRST_CLIENT_ERROR, ProviderSession, counting, shown_url
from candle_pipeline.providers.resilience import Resilience

POLYGON_ENDPOINT = "https://api.polygon.io"
AGGREGATES_PATH = "/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/{first}/{last}"
GROUPED_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{day}"
SPLITS_PATH = "/v3/reference/splits"
DIVIDENDS_PATH = "/v3/reference/dividends"
# Polygon's US stock aggregates are in New York time, whatever the listing.
TIMEZONE = "America/New_York"
# Our intervals as Polygon's (multiplier, timespan).
TIMESPANS = {
    "1m": (1, "minute"),
    "5m": (5, "minute"),
    "15m": (15, "minute"),
    "30m": (30, "minute"),
    "1h": (1, "hour"),
    "1d": (1, "day"),
}
DAILY = "1d"
POLYGON_INTERVALS = tuple(TIMESPANS)
# The largest pages Polygon serves: aggregates (bars) and reference data (rows).
AGGREGATES_PAGE_LIMIT = 50_000
REFERENCE_PAGE_LIMIT = 1_000
AUTH_STATUSES = (401, 403)
ERROR_TEXT_CHARS = 200


def _utc_now() -> datetime:
    return datetime.now(UTC)


def polygon_symbol(ticker: str) -> str:
    """Polygon spells share classes with a dot (`BRK.B`), where this project has `BRK-B`."""
    return ticker.replace("-", ".")


@dataclass
class PolygonProvider:
    """Raw bars of US stocks, in the fewest requests Polygon allows."""

    api_key: str | None
    interval: str
    session: ProviderSession
    resilience: Resilience
    clock: Callable[[], datetime] = field(default=_utc_now)
    name: str = "polygon"

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult:
        """Whole days (`after` and `as_of` are the client's to apply)."""
        stats = CallStats()
        with counting(stats):
            bars, dropped = self._range_bars(ticker, days, stats)
            actions = self._actions(days, stats, ticker)
        return _result(bars, actions, dropped, stats)

    def fetch_group(self, open_days: Mapping[str, Sequence[date]]) -> GroupFetch:
        """Grouped daily when it needs fewer requests (one per day for every ticker) than one
        range request per ticker; else per ticker."""
        all_days = sorted({day for days in open_days.values() for day in days})
        if self.interval != DAILY or len(all_days) >= len(open_days):
            return fetch_each(self, open_days)
        stats = CallStats()
        try:
            with counting(stats):
                frames = [self._grouped_day(day, stats) for day in all_days]
                actions = self._actions(all_days, stats)
        except ProviderSetupError:
            raise
        except ProviderError as error:
            return GroupFetch({}, dict.fromkeys(open_days, error), stats)
        answers = pd.concat(frames, ignore_index=True)
        results: dict[str, FetchResult] = {}
        errors: dict[str, Exception] = {}
        for ticker, days in open_days.items():
            rows = answers[answers["T"] == polygon_symbol(ticker)]
            try:
                bars, dropped = self._bars(rows, ticker, days)
            except BarsError as error:
                errors[ticker] = error
                continue
            if bars.empty:
                errors[ticker] = ProviderError(
                    f"Polygon grouped daily {all_days[0]}..{all_days[-1]}: no storable bar of "
                    f"{polygon_symbol(ticker)} on its {len(days)} requested day(s)"
                    f"{_dropped_note(dropped)}; nothing is stored"
                )
                continue
            mine = actions[actions["ticker"] == ticker]
            results[ticker] = FetchResult(bars=bars, requests=0, actions=mine, dropped=dropped)
        return GroupFetch(results, errors, stats)

    def _range_bars(
        self, ticker: str, days: Sequence[date], stats: CallStats
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        multiplier, timespan = TIMESPANS[self.interval]
        symbol = polygon_symbol(ticker)
        path = AGGREGATES_PATH.format(
            symbol=symbol,
            multiplier=multiplier,
            timespan=timespan,
            first=min(days).isoformat(),
            last=max(days).isoformat(),
        )
        params = {"adjusted": "false", "sort": "asc", "limit": str(AGGREGATES_PAGE_LIMIT)}
        what = f"Polygon {symbol} {self.interval} {min(days)}..{max(days)}"
        frame = pd.DataFrame(
            self._rows(path, params, what, stats), columns=["t", "o", "h", "l", "c", "v"]
        )
        bars, dropped = self._bars(frame, ticker, days)
        if bars.empty:
            raise ProviderError(
                f"{what}: Polygon returned no storable bar for the {len(days)} requested day(s)"
                f"{_dropped_note(dropped)}; nothing is stored"
            )
        return bars, dropped

    def _grouped_day(self, day: date, stats: CallStats) -> pd.DataFrame:
        what = f"Polygon grouped daily {day}"
        path = GROUPED_PATH.format(day=day.isoformat())
        rows = self._rows(path, {"adjusted": "false"}, what, stats)
        frame = pd.DataFrame(rows, columns=["T", "t", "o", "h", "l", "c", "v"])
        # A grouped answer is about the day asked for, whatever its bars' stamps say.
        return frame.assign(t=pd.Timestamp(day, tz=TIMEZONE).value // 1_000_000)

    def _bars(
        self, frame: pd.DataFrame, ticker: str, days: Sequence[date]
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        # A stamp that is not a number becomes NaT, which check_bars refuses naming the ticker.
        stamps = pd.to_datetime(pd.to_numeric(frame["t"], errors="coerce"), unit="ms", utc=True)
        local = stamps.dt.tz_convert(TIMEZONE)
        trade_date = local.dt.tz_localize(None).dt.normalize()
        if self.interval == DAILY:
            stamps = trade_date.dt.tz_localize(TIMEZONE).dt.tz_convert("UTC")
        shaped = pd.DataFrame(
            {
                "ticker": ticker,
                "trade_date": trade_date,
                "interval": self.interval,
                "ts": stamps,
                "open": frame["o"],
                "high": frame["h"],
                "low": frame["l"],
                "close": frame["c"],
                "volume": frame["v"],
            },
            index=frame.index,
        )
        today = pd.Timestamp(self.clock()).tz_convert(TIMEZONE).tz_localize(None).normalize()
        kept, dropped = storable_rows(shaped, days, shaped["trade_date"] >= today)
        return check_bars(shaped[kept], f"Polygon {ticker}"), dropped

    def _actions(
        self, days: Sequence[date], stats: CallStats, ticker: str | None = None
    ) -> pd.DataFrame:
        """Splits and dividends with an ex-date among `days` (of one ticker, or all)."""
        first, last = min(days).isoformat(), max(days).isoformat()
        only = {"ticker": polygon_symbol(ticker)} if ticker else {}
        limit = {"limit": str(REFERENCE_PAGE_LIMIT)}
        splits = self._rows(
            SPLITS_PATH,
            {**only, **limit, "execution_date.gte": first, "execution_date.lte": last},
            f"Polygon splits {first}..{last}",
            stats,
        )
        dividends = self._rows(
            DIVIDENDS_PATH,
            {**only, **limit, "ex_dividend_date.gte": first, "ex_dividend_date.lte": last},
            f"Polygon dividends {first}..{last}",
            stats,
        )
        return corporate_actions(splits, dividends, days)

    def _rows(
        self, path: str, params: dict[str, str], what: str, stats: CallStats
    ) -> list[dict[str, Any]]:
        """The `results` of every page of an answer, following `next_url` to the end."""
        rows: list[dict[str, Any]] = []
        url: str | None = POLYGON_ENDPOINT + path
        query: dict[str, str] | None = params
        while url is not None:
            body = self.resilience.call(what, lambda u=url, q=query: self._get(u, q, what), stats)
            results = body.get("results") or []
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise ProviderError(f"{what}: Polygon's `results` is not a list of objects")
            rows.extend(results)
            url, query = body.get("next_url"), None
        return rows

    def _get(self, url: str, params: dict[str, str] | None, what: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = self.session.get(url, params=params, headers=headers)
        status = response.status_code
        if status in AUTH_STATUSES:
            raise ProviderSetupError(
                f"{what}: {shown_url(response.url)} answered HTTP {status}: Polygon refused the "
                f"API key in CANDLE_POLYGON_API_KEY ({_explanation(response)})"
            )
        if status >= FIRST_CLIENT_ERROR:
            raise ProviderError(
                f"{what}: {shown_url(response.url)} answered HTTP {status}: "
                f"{_explanation(response)}"
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, requests.JSONDecodeError) as error:
            raise TransientProviderError(f"{what}: Polygon's answer is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise ProviderError(f"{what}: Polygon's answer is not a JSON object")
        if body.get("status") == "ERROR":
            raise ProviderError(f"{what}: Polygon: {body.get('error') or body.get('message')}")
        return body


def corporate_actions(
    splits: Sequence[Mapping[str, Any]],
    dividends: Sequence[Mapping[str, Any]],
    days: Sequence[date],
) -> pd.DataFrame:
    """Polygon's splits (`split_to` new shares for `split_from` old) and cash dividends as rows
    of ACTION_COLUMNS, one per ticker and ex-date of `days` (the ticker in our spelling)."""
    split_rows = pd.DataFrame.from_records(
        list(splits), columns=["ticker", "execution_date", "split_from", "split_to"]
    )
    split_rows = pd.DataFrame(
        {
            "ticker": split_rows["ticker"].astype(str),
            "ex_date": split_rows["execution_date"],
            "split_ratio": pd.to_numeric(split_rows["split_to"], errors="coerce")
            / pd.to_numeric(split_rows["split_from"], errors="coerce"),
        }
    )
    dividend_rows = pd.DataFrame.from_records(
        list(dividends), columns=["ticker", "ex_dividend_date", "cash_amount"]
    )
    dividend_rows = pd.DataFrame(
        {
            "ticker": dividend_rows["ticker"].astype(str),
            "ex_date": dividend_rows["ex_dividend_date"],
            "dividend": pd.to_numeric(dividend_rows["cash_amount"], errors="coerce"),
        }
    )
    if split_rows.empty and dividend_rows.empty:
        return empty_actions()
    # One split filed under two dates, or two dividends on one day: one row, the sum of the cash.
    split_rows = split_rows.drop_duplicates(["ticker", "ex_date"])
    dividend_rows = dividend_rows.groupby(["ticker", "ex_date"], as_index=False)["dividend"].sum()
    actions = split_rows.merge(dividend_rows, on=["ticker", "ex_date"], how="outer")
    actions["ticker"] = actions["ticker"].str.replace(".", "-", regex=False)
    actions["ex_date"] = pd.to_datetime(actions["ex_date"], errors="coerce")
    wanted = actions["ex_date"].isin(pd.to_datetime(list(days)))
    return (
        actions.loc[wanted, list(ACTION_COLUMNS)]
        .astype(empty_actions().dtypes)
        .reset_index(drop=True)
    )


def _result(
    bars: pd.DataFrame, actions: pd.DataFrame, dropped: Mapping[str, int], stats: CallStats
) -> FetchResult:
    return FetchResult.measured(
        bars if not bars.empty else empty_bars(BAR_COLUMNS),
        stats,
        actions=actions,
        dropped=dict(Counter(dropped)),
    )


def _dropped_note(dropped: Mapping[str, int]) -> str:
    counts = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
    return f" (dropped: {counts})" if counts else ""


def _explanation(response: requests.Response) -> str:
    """Polygon's own words from an error body (`error` or `message`), else its first bytes."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        return str(body.get("error") or body.get("message"))[:ERROR_TEXT_CHARS]
    return response.text[:ERROR_TEXT_CHARS] or "(no body)"
