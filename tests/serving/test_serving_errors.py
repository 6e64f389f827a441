"""How the service turns domain errors into HTTP answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable
from pydantic import ValidationError

from serving.market import MarketRequest, MarketService
from serving.predictions import PredictRequest, PricePredictionService, RequestError
from serving.service import _http_error
from training.registry import LoadedModel
from warehouse.errors import DataError, MarketlakeError
from warehouse.lake import Lake


@pytest.mark.parametrize(
    ("error", "answer", "status"),
    [
        (RequestError("symbol", "unknown symbol 'X'"), NotFound, 404),  # symbol not held
        (RequestError("symbols", "unknown symbol(s) 'X'"), NotFound, 404),  # same, as a list
        (RequestError("horizon", "horizon 3 is not served"), InvalidArgument, 400),  # bad field
        (DataError("the gold feature table does not exist"), ServiceUnavailable, 503),  # no data
    ],
)
def test_domain_errors_map_to_statuses(
    error: MarketlakeError, answer: type[Exception], status: int
) -> None:
    http = _http_error(error)
    assert isinstance(http, answer)
    assert int(http.error_code) == status  # type: ignore[attr-defined]
    assert str(error) in str(http)


def test_an_empty_lake_is_a_data_error_not_a_crash(
    tmp_path: Path, registered_model: LoadedModel
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(DataError, match="gold feature table does not exist"):
        PricePredictionService(registered_model, lake).predict(PredictRequest(symbol="BTCUSDT"))
    with pytest.raises(DataError, match="does not exist"):
        MarketService(lake).market(MarketRequest())


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"symbol": "   "}, "symbol"),  # blank once trimmed
        ({"symbol": "BTCUSDT", "horizon": True}, "horizon"),  # a boolean is not an hour count
        ({"symbol": "BTCUSDT", "horizon": 1.5}, "horizon"),  # nor a fraction
    ],
)
def test_bad_predict_bodies_name_the_field(body: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as error:
        PredictRequest.model_validate(body)
    assert error.value.errors()[0]["loc"][0] == named


def test_symbols_are_trimmed() -> None:
    assert PredictRequest.model_validate({"symbol": " btcusdt "}).symbol == "btcusdt"
