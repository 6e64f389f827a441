"""The BentoML service: ``POST /predict`` from the champion price model.

Started by ``marketlake serve`` (``bentoml serve serving.service:MarketlakeService``). It loads the
``champion`` of ``marketlake-price`` once, at start-up, and reads the lake and the registry named
by the same environment variables as every other command.
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound
from pydantic import Field

from serving.prediction_log import PredictionLog
from serving.predictions import (
    PredictRequest,
    PredictResponse,
    PricePredictionService,
    RequestError,
)
from training.config import MODEL_NAME
from training.registry import load_registered
from warehouse.catalog import GOLD_SERVED_PREDICTIONS
from warehouse.lake import Lake
from warehouse.settings import apply_tool_homes, load_settings


@bentoml.service(name="marketlake", traffic={"timeout": 30})
class MarketlakeService:
    """Price predictions per symbol and horizon, with the model version that made them."""

    def __init__(self) -> None:
        settings = load_settings()
        apply_tool_homes(settings)
        model = load_registered(settings.mlflow_tracking_uri, MODEL_NAME)
        lake = Lake(settings.lake_uri, settings.storage_options)
        self.prediction_log = PredictionLog(lake.location(GOLD_SERVED_PREDICTIONS))
        self.predictions = PricePredictionService(model, lake, prediction_log=self.prediction_log)

    @bentoml.on_shutdown
    def write_prediction_log(self) -> None:
        """Write the served predictions still in the buffer."""
        self.prediction_log.close()

    @bentoml.api(route="/predict", input_spec=PredictRequest)  # extra="forbid"
    def predict(
        self,
        symbol: Annotated[str, Field(min_length=1, max_length=32, examples=["BTCUSDT"])],
        horizon: Annotated[int, Field(ge=1, le=168, description="hours ahead")] = 1,
    ) -> PredictResponse:
        """Forward return and up-probability of ``symbol`` over ``horizon`` hours."""
        try:
            return self.predictions.predict(PredictRequest(symbol=symbol, horizon=horizon))
        except RequestError as exc:
            if exc.field == "symbol":
                raise NotFound(f"symbol: {exc}") from exc
            raise InvalidArgument(f"{exc.field}: {exc}") from exc
