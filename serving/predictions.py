"""Answer prediction requests from the champion model and the latest gold features.

Plain Python (no BentoML): the service class in ``serving/service.py`` is a thin shell around
:class:`PricePredictionService`, so tests and notebooks can call the same code directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from serving.prediction_log import PredictionLog
from training.registry import LoadedModel
from warehouse.catalog import GOLD_FEATURES
from warehouse.errors import DataError, MarketlakeError
from warehouse.lake import Lake, read_table, table_version


class RequestError(MarketlakeError):
    """A request names something the service does not serve; ``field`` says which input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SymbolName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
"""A symbol in a request body: trimmed, then 1 to 32 characters (matched upper-cased)."""


def select_symbols(requested: Sequence[str] | None, served: Sequence[str]) -> list[str]:
    """The requested symbols (trimmed, upper-cased, first occurrence kept), or all ``served``.

    Raises:
        RequestError: on field ``symbols``, naming every symbol not in ``served``.
    """
    if requested is None:
        return list(served)
    wanted = list(dict.fromkeys(s.strip().upper() for s in requested))
    known = set(served)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise RequestError(
            "symbols",
            f"unknown symbol(s) {', '.join(repr(s) for s in unknown)}; "
            f"known symbols: {', '.join(sorted(known))}",
        )
    return wanted


class PredictRequest(BaseModel):
    """``POST /predict`` body."""

    model_config = ConfigDict(extra="forbid")

    symbol: SymbolName = Field(examples=["BTCUSDT"])
    horizon: int = Field(1, ge=1, le=168, strict=True, description="hours ahead", examples=[1])


class PredictResponse(BaseModel):
    """One prediction: forward return and probability of an up move over the horizon."""

    symbol: str
    horizon_hours: int
    predicted_return: float
    direction_probability: float
    direction: str
    feature_time: datetime
    model_name: str
    model_version: int
    served_at: datetime


@dataclass
class _LatestPredictions:
    table_version: int
    checked_at: float
    frame: pl.DataFrame


class PricePredictionService:
    """Predicts from the latest gold features; re-reads gold only when its version moves.

    Every answer is also recorded in ``prediction_log`` when one is given.

    Args:
        model: the loaded champion model.
        lake: the lake holding ``gold/features``.
        refresh_s: how often to check the gold table version (default 5 s).
    """

    def __init__(
        self,
        model: LoadedModel,
        lake: Lake,
        *,
        refresh_s: float = 5.0,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.model = model
        self.lake = lake
        self.refresh_s = refresh_s
        self.prediction_log = prediction_log
        self._latest: _LatestPredictions | None = None
        self._lock = threading.Lock()

    @property
    def horizons(self) -> list[int]:
        return self.model.predictor.horizons

    def symbols(self) -> list[str]:
        return sorted(self.latest()["symbol"].to_list())

    def require_horizon(self, horizon: int) -> None:
        """Raise :class:`RequestError` on ``horizon`` unless the model predicts it."""
        if horizon not in self.horizons:
            raise RequestError(
                "horizon",
                f"horizon {horizon} is not served; choose one of "
                f"{', '.join(str(h) for h in self.horizons)} (hours)",
            )

    def predict(self, request: PredictRequest) -> PredictResponse:
        """Answer one request; raise :class:`RequestError` naming a bad field."""
        self.require_horizon(request.horizon)
        symbol = request.symbol.strip().upper()
        latest = self.latest()
        row = latest.filter(pl.col("symbol") == symbol)
        if row.is_empty():
            known = ", ".join(latest["symbol"].sort().to_list())
            raise RequestError("symbol", f"unknown symbol {symbol!r}; known symbols: {known}")
        h = request.horizon
        probability = float(row[f"direction_probability_{h}h"][0])
        response = PredictResponse(
            symbol=symbol,
            horizon_hours=h,
            predicted_return=float(row[f"predicted_return_{h}h"][0]),
            direction_probability=probability,
            direction="up" if probability > 0.5 else "down",
            feature_time=row["ts"][0],
            model_name=self.model.name,
            model_version=self.model.version,
            served_at=datetime.now(UTC),
        )
        if self.prediction_log is not None:
            self.prediction_log.record(
                symbol=response.symbol,
                ts=response.feature_time,
                horizon_hours=h,
                predicted_return=response.predicted_return,
                direction_probability=probability,
                model_name=response.model_name,
                model_version=response.model_version,
                served_at=response.served_at,
            )
        return response

    def latest(self) -> pl.DataFrame:
        """The latest prediction per symbol: ``symbol, ts`` and one return and probability column
        per horizon (``predicted_return_{h}h``, ``direction_probability_{h}h``)."""
        with self._lock:
            now = time.monotonic()
            cached = self._latest
            if cached is not None and now - cached.checked_at < self.refresh_s:
                return cached.frame
            location = self.lake.location(GOLD_FEATURES)
            version = table_version(location)
            if version is None:
                raise DataError("the gold feature table does not exist: materialize it first")
            if cached is not None and cached.table_version == version:
                cached.checked_at = now
                return cached.frame
            gold = read_table(location, version=version)
            frame = self.model.predictor.predict_all(gold, latest_only=True)
            self._latest = _LatestPredictions(version, now, frame)
            return frame
