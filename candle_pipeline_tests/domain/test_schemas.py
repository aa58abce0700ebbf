"""The pandera contracts are the one description of the frames written to the warehouse: the
domain's column lists, dtypes and empty frames agree with them, and they hold every quality flag."""

import pandas as pd
import pandera.errors
import pytest

from candle_pipeline.domain.bars import BAR_DTYPES, STORED_RAW_COLUMNS, empty_bars
from candle_pipeline.domain.candles import CANDLE_COLUMNS, CANDLE_DTYPES, empty_candles
from candle_pipeline.domain.corporate_actions import (
    ACTION_DTYPES,
    STORED_ACTION_COLUMNS,
    empty_actions,
)
from candle_pipeline.domain.quality import FLAG_COLUMNS, VALIDATED_COLUMNS
from candle_pipeline.domain.schemas import (
    CandlesSchema,
    CorporateActionsSchema,
    MarketTimingsSchema,
    RawQuotesSchema,
    TickerDaysSchema,
    ValidatedQuotesSchema,
    pandas_dtypes,
)
from candle_pipeline.domain.sessions import TIMING_COLUMNS, empty_timings
from candle_pipeline.domain.ticker_days import STATE_COLUMNS, STATE_DTYPES, empty_states


def test_the_domain_column_lists_are_the_contracts_columns_in_order() -> None:
    assert tuple(RawQuotesSchema.columns) == STORED_RAW_COLUMNS
    assert tuple(ValidatedQuotesSchema.columns) == VALIDATED_COLUMNS
    assert tuple(CandlesSchema.columns) == CANDLE_COLUMNS
    assert tuple(MarketTimingsSchema.columns) == TIMING_COLUMNS
    assert tuple(CorporateActionsSchema.columns) == STORED_ACTION_COLUMNS
    assert tuple(TickerDaysSchema.columns) == STATE_COLUMNS


def test_the_domain_dtypes_are_the_contracts_dtypes() -> None:
    assert pandas_dtypes(RawQuotesSchema) == {name: BAR_DTYPES[name] for name in STORED_RAW_COLUMNS}
    assert pandas_dtypes(CandlesSchema) == CANDLE_DTYPES
    assert pandas_dtypes(CorporateActionsSchema) == ACTION_DTYPES
    assert pandas_dtypes(TickerDaysSchema) == STATE_DTYPES
    validated = pandas_dtypes(ValidatedQuotesSchema)
    assert {name: validated[name] for name in FLAG_COLUMNS} == dict.fromkeys(FLAG_COLUMNS, "bool")


def test_empty_frames_of_the_domain_fit_their_contracts() -> None:
    for frame, schema in [
        (empty_bars(STORED_RAW_COLUMNS), RawQuotesSchema),
        (empty_candles(), CandlesSchema),
        (empty_timings(), MarketTimingsSchema),
        (empty_actions(STORED_ACTION_COLUMNS), CorporateActionsSchema),
        (empty_states(), TickerDaysSchema),
    ]:
        schema.validate(frame)
        assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
            name: str(pd.Series(dtype=dtype).dtype) for name, dtype in pandas_dtypes(schema).items()
        }


def test_every_quality_flag_is_a_required_column_of_validated_quotes() -> None:
    """A new quality rule's flag needs no second edit: the contract lists the rules' flags."""
    frame = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in BAR_DTYPES.items()})
    validated = frame.drop(columns="adj_close").assign(
        session=pd.Series(dtype=object),
        **{name: pd.Series(dtype=bool) for name in FLAG_COLUMNS},
        is_valid=pd.Series(dtype=bool),
    )
    ValidatedQuotesSchema.validate(validated)
    with pytest.raises(pandera.errors.SchemaError, match=FLAG_COLUMNS[-1]):
        ValidatedQuotesSchema.validate(validated.drop(columns=FLAG_COLUMNS[-1]))


def test_a_candle_without_prices_is_refused() -> None:
    candle = pd.DataFrame(
        {
            "ticker": ["SPY"],
            "trade_date": pd.to_datetime(["2013-10-07"]),
            "interval": ["1d"],
            "ts": pd.to_datetime(["2013-10-07 13:30"], utc=True).astype("datetime64[ns, UTC]"),
            **{name: [1.0] for name in ("open", "high", "low", "close", "volume")},
            "bar_count": [1],
        }
    )
    CandlesSchema.validate(candle)
    with pytest.raises(pandera.errors.SchemaError, match="open"):
        CandlesSchema.validate(candle.assign(open=float("nan")))
