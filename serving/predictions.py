"""Answer prediction requests from the champion model and the latest gold features.

The model comes from a :class:`serving.champion.ModelSource` (in the service, the follower of the
registry's champion); every answer names the model version that produced its numbers.

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

from serving.champion import FixedModel, ModelSource
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


@dataclass(frozen=True)
class LatestPredictions:
    """The latest prediction per symbol and the model and gold table version they came from.

    Answers built from one snapshot name the model that produced their numbers, even when the
    champion changes while they are built.

    Attributes:
        frame: ``symbol, ts`` and one return and probability column per horizon
            (``predicted_return_{h}h``, ``direction_probability_{h}h``).
        model: the model that predicted ``frame``.
        gold_version: the Delta version of ``gold/features`` that was read.
    """

    frame: pl.DataFrame
    model: LoadedModel
    gold_version: int

    @property
    def horizons(self) -> list[int]:
        return self.model.predictor.horizons

    def require_horizon(self, horizon: int) -> None:
        """Raise :class:`RequestError` on ``horizon`` unless :attr:`model` predicts it."""
        require_horizon(self.model, horizon)


def require_horizon(model: LoadedModel, horizon: int) -> None:
    """Raise :class:`RequestError` on field ``horizon`` unless ``model`` predicts it."""
    horizons = model.predictor.horizons
    if horizon not in horizons:
        raise RequestError(
            "horizon",
            f"horizon {horizon} is not served; choose one of "
            f"{', '.join(str(h) for h in horizons)} (hours)",
        )


@dataclass
class _Cached:
    latest: LatestPredictions
    checked_at: float


class PricePredictionService:
    """Predicts from the latest gold features with the champion; recomputes only when the gold
    table version or the model version moves.

    Every answer is also recorded in ``prediction_log`` when one is given.

    Args:
        model: the model to answer with: a loaded model, or a source that follows the registry
            (:class:`serving.champion.ChampionFollower`), whose :class:`NoChampionError` while
            no champion is loaded propagates from every method.
        lake: the lake holding ``gold/features``.
        refresh_s: how often to check the gold table version (default 1 s: a Delta version check
            costs about a millisecond, and it bounds how late a new gold hour is served).
        prediction_log: where served answers are recorded; default None: nowhere.
    """

    def __init__(
        self,
        model: LoadedModel | ModelSource,
        lake: Lake,
        *,
        refresh_s: float = 1.0,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.source: ModelSource = FixedModel(model) if isinstance(model, LoadedModel) else model
        self.lake = lake
        self.refresh_s = refresh_s
        self.prediction_log = prediction_log
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel:
        """The model answering now (raises :class:`NoChampionError` when there is none)."""
        return self.source.require()

    @property
    def horizons(self) -> list[int]:
        return self.model.predictor.horizons

    def symbols(self) -> list[str]:
        return sorted(self.latest()["symbol"].to_list())

    def require_horizon(self, horizon: int) -> None:
        """Raise :class:`RequestError` on ``horizon`` unless the current model predicts it."""
        require_horizon(self.model, horizon)

    def predict(self, request: PredictRequest) -> PredictResponse:
        """Answer one request; raise :class:`RequestError` naming a bad field."""
        self.require_horizon(request.horizon)  # before reading gold: a bad field is a 400
        symbol = request.symbol.strip().upper()
        latest = self.latest_predictions()
        latest.require_horizon(request.horizon)  # the model may have changed meanwhile
        row = latest.frame.filter(pl.col("symbol") == symbol)
        if row.is_empty():
            known = ", ".join(latest.frame["symbol"].sort().to_list())
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
            model_name=latest.model.name,
            model_version=latest.model.version,
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
        """The latest prediction per symbol (the frame of :meth:`latest_predictions`)."""
        return self.latest_predictions().frame

    def latest_predictions(self, *, fresh: bool = False) -> LatestPredictions:
        """The latest prediction per symbol by the current model, cached per (gold table
        version, model version): recomputed when either moves.

        Args:
            fresh: check the gold table version now; default False: at most every
                ``refresh_s`` seconds (the dashboard's watcher, which saw the version move,
                passes True).

        Raises:
            NoChampionError: no model is loaded yet.
            DataError: the gold feature table does not exist.
        """
        model = self.source.require()
        with self._lock:
            now = time.monotonic()
            cached = self._cached
            if cached is not None and not _same_model(cached.latest.model, model):
                cached = None  # another model: its numbers must be recomputed
            if cached is not None and not fresh and now - cached.checked_at < self.refresh_s:
                return cached.latest
            location = self.lake.location(GOLD_FEATURES)
            version = table_version(location)
            if version is None:
                raise DataError("the gold feature table does not exist: materialize it first")
            if cached is not None and cached.latest.gold_version == version:
                cached.checked_at = now
                return cached.latest
            gold = read_table(location, version=version)
            frame = model.predictor.predict_all(gold, latest_only=True)
            latest = LatestPredictions(frame=frame, model=model, gold_version=version)
            self._cached = _Cached(latest, now)
            return latest


def _same_model(a: LoadedModel, b: LoadedModel) -> bool:
    return a.name == b.name and a.version == b.version
