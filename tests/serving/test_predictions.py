"""The prediction logic behind ``POST /predict``, without the HTTP layer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from serving.prediction_log import PredictionLog
from serving.predictions import PredictRequest, PricePredictionService, RequestError
from training.registry import LoadedModel
from warehouse.catalog import GOLD_FEATURES, GOLD_SERVED_PREDICTIONS
from warehouse.lake import Lake, overwrite, read_table


@pytest.fixture(scope="module")
def service(
    registered_model: LoadedModel,
    gold_frame: Callable[..., pl.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[PricePredictionService, Lake]:
    lake = Lake(str(tmp_path_factory.mktemp("serving") / "lake"))
    overwrite(lake.location(GOLD_FEATURES), gold_frame(300))
    served = PredictionLog(lake.location(GOLD_SERVED_PREDICTIONS), flush_s=None)
    return PricePredictionService(registered_model, lake, refresh_s=0, prediction_log=served), lake


def test_predicts_from_the_latest_gold_row(service: tuple[PricePredictionService, Lake]) -> None:
    predictions, lake = service
    answer = predictions.predict(PredictRequest(symbol=" aaausdt ", horizon=1))
    assert answer.symbol == "AAAUSDT" and answer.horizon_hours == 1
    assert answer.feature_time == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=299)
    assert 0 < answer.direction_probability < 1
    assert answer.direction == ("up" if answer.direction_probability > 0.5 else "down")
    assert answer.model_version == 1
    assert predictions.prediction_log is not None and predictions.prediction_log.flush() == 1
    [served] = read_table(lake.location(GOLD_SERVED_PREDICTIONS)).to_dicts()
    assert served["symbol"] == "AAAUSDT" and served["ts"] == answer.feature_time
    assert served["direction_probability"] == answer.direction_probability


@pytest.mark.parametrize(
    ("request_body", "field", "message"),
    [
        ({"symbol": "ZZZUSDT", "horizon": 1}, "symbol", "unknown symbol 'ZZZUSDT'"),  # not in gold
        ({"symbol": "AAAUSDT", "horizon": 4}, "horizon", "horizon 4 is not served"),  # not trained
    ],
)
def test_requests_for_unknown_things_name_the_field(
    service: tuple[PricePredictionService, Lake],
    request_body: dict[str, object],
    field: str,
    message: str,
) -> None:
    predictions, _ = service
    with pytest.raises(RequestError, match=message) as error:
        predictions.predict(PredictRequest.model_validate(request_body))
    assert error.value.field == field


def test_new_gold_rows_are_picked_up_without_a_restart(
    service: tuple[PricePredictionService, Lake], gold_frame: Callable[..., pl.DataFrame]
) -> None:
    predictions, lake = service
    overwrite(lake.location(GOLD_FEATURES), gold_frame(320, seed=1))
    answer = predictions.predict(PredictRequest(symbol="BBBUSDT", horizon=1))
    assert answer.feature_time == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=319)
