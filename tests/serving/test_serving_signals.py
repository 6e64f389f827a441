"""Trading signals from the latest predictions, by the backtest's threshold rule."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pytest
from pydantic import ValidationError

from serving.predictions import PricePredictionService, RequestError
from serving.signals import SignalService, SignalsRequest
from training.registry import LoadedModel
from warehouse.catalog import GOLD_FEATURES
from warehouse.lake import Lake, overwrite


@pytest.fixture(scope="module")
def signals(
    registered_model: LoadedModel,
    gold_frame: Callable[..., pl.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> SignalService:
    lake = Lake(str(tmp_path_factory.mktemp("signals") / "lake"))
    overwrite(lake.location(GOLD_FEATURES), gold_frame(300))
    return SignalService(PricePredictionService(registered_model, lake, refresh_s=0))


def _probability(service: SignalService, symbol: str) -> float:
    latest = service.predictions.latest()
    return float(latest.filter(pl.col("symbol") == symbol)["direction_probability_1h"][0])


@pytest.mark.parametrize(
    ("long_offset", "short_offset", "mode", "expected"),
    [
        (0.0, -0.01, "long_short", "long"),  # P(up) == long threshold: long (>=, as backtested)
        (-0.01, -0.02, "long_short", "long"),  # above the long threshold
        (0.01, -0.01, "long_short", "flat"),  # between the thresholds
        (0.02, 0.0, "long_short", "short"),  # P(up) == short threshold: short (<=)
        (0.02, 0.01, "long_short", "short"),  # below the short threshold
        (0.02, 0.01, "long_flat", "flat"),  # below the short threshold, but never short
    ],
)
def test_signal_follows_the_backtest_rule(
    signals: SignalService, long_offset: float, short_offset: float, mode: str, expected: str
) -> None:
    p = _probability(signals, "AAAUSDT")
    request = SignalsRequest.model_validate(
        {
            "symbols": ["aaausdt"],
            "long_threshold": p + long_offset,
            "short_threshold": p + short_offset,
            "mode": mode,
        }
    )
    answer = signals.signals(request)
    [signal] = answer.signals
    assert signal.symbol == "AAAUSDT" and signal.signal == expected
    assert signal.position == {"long": 1, "flat": 0, "short": -1}[expected]
    assert signal.direction_probability == p
    assert answer.model_version == 1 and answer.horizon_hours == 1


def test_all_served_symbols_by_default_with_the_prediction_behind_each(
    signals: SignalService,
) -> None:
    answer = signals.signals(SignalsRequest())
    latest = signals.predictions.latest().sort("symbol")
    assert [s.symbol for s in answer.signals] == ["AAAUSDT", "BBBUSDT"]
    for signal, row in zip(answer.signals, latest.iter_rows(named=True), strict=True):
        assert signal.predicted_return == row["predicted_return_1h"]
        assert signal.feature_time == row["ts"]
    assert (answer.long_threshold, answer.short_threshold, answer.mode) == (
        0.55,
        0.45,
        "long_short",
    )


def test_requested_order_is_kept_and_duplicates_dropped(signals: SignalService) -> None:
    request = SignalsRequest(symbols=["BBBUSDT", "aaausdt", " bbbusdt "])
    assert [s.symbol for s in signals.signals(request).signals] == ["BBBUSDT", "AAAUSDT"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"symbols": ["AAAUSDT", "ZZZUSDT"]}, "symbols", "symbol.*'ZZZUSDT'"),  # not in gold
        ({"horizon": 4}, "horizon", "horizon 4 is not served"),  # horizon the model lacks
    ],
)
def test_unknown_symbols_and_horizons_name_the_field(
    signals: SignalService, body: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(RequestError, match=message) as error:
        signals.signals(SignalsRequest.model_validate(body))
    assert error.value.field == field


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"long_threshold": 0.4, "short_threshold": 0.6}, "short_threshold 0.6 must"),  # swapped
        ({"long_threshold": 0.5, "short_threshold": 0.5}, "long_threshold 0.5"),  # equal
        ({"long_threshold": 1.5}, "long_threshold"),  # outside [0, 1]
        ({"short_threshold": -0.1}, "short_threshold"),  # outside [0, 1]
        ({"symbols": []}, "symbols"),  # empty list
        ({"symbols": [""]}, "symbols"),  # empty symbol
        ({"symbols": ["  "]}, "symbols"),  # blank symbol: empty once trimmed
        ({"horizon": 0}, "horizon"),  # not a horizon
        ({"horizon": True}, "horizon"),  # a boolean is not an hour count
        ({"horizon": "4"}, "horizon"),  # nor is a string
        ({"mode": "short_only"}, "mode"),  # not a backtest mode
        ({"threshold": 0.5}, "threshold"),  # unknown field (extra="forbid")
    ],
)
def test_bad_bodies_are_rejected_naming_the_field(body: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as error:
        SignalsRequest.model_validate(body)
    assert named in str(error.value)


def test_swapped_thresholds_point_at_short_threshold() -> None:
    with pytest.raises(ValidationError) as error:
        SignalsRequest.model_validate({"long_threshold": 0.4, "short_threshold": 0.6})
    [problem] = error.value.errors()
    assert problem["loc"] == ("short_threshold",)
