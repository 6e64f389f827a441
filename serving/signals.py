"""Trading signals from the champion's latest probabilities, by the backtest's own rule.

``POST /signals`` answers, per symbol, ``long``, ``flat`` or ``short`` from the probability of an
up move over the horizon, decided by :func:`training.backtest.positions_from_probabilities` with a
:class:`training.backtest.BacktestConfig` built from the request: the service signals exactly what
the backtest traded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import polars as pl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from serving.predictions import (
    LatestPredictions,
    PricePredictionService,
    SymbolName,
    select_symbols,
)
from training.backtest import BacktestConfig, positions_from_probabilities

SIGNAL_NAMES: dict[float, str] = {1.0: "long", 0.0: "flat", -1.0: "short"}
"""Backtest position to signal name."""


class SignalsRequest(BaseModel):
    """``POST /signals`` body; every field is optional.

    Attributes:
        symbols: the symbols to signal; default None: every served symbol.
        horizon: hours ahead the probability is for; default 1.
        long_threshold: long when ``P(up) >= long_threshold``; default 0.55.
        short_threshold: short when ``P(up) <= short_threshold``; default 0.45.
        mode: ``"long_short"`` (default: long, flat or short) or ``"long_flat"`` (never short),
            as in the backtest.
    """

    model_config = ConfigDict(extra="forbid")

    symbols: list[SymbolName] | None = Field(
        default=None, min_length=1, max_length=500, examples=[["BTCUSDT", "ETHUSDT"]]
    )
    horizon: int = Field(1, ge=1, le=168, strict=True, description="hours ahead", examples=[1])
    long_threshold: float = Field(0.55, ge=0.0, le=1.0, examples=[0.55])
    short_threshold: float = Field(0.45, ge=0.0, le=1.0, examples=[0.45])
    mode: Literal["long_short", "long_flat"] = "long_short"

    @field_validator("short_threshold")
    @classmethod
    def _below_long_threshold(cls, short: float, info: ValidationInfo) -> float:
        long = info.data.get("long_threshold")  # absent when it failed its own validation
        if long is not None:
            try:
                BacktestConfig(long_threshold=long, short_threshold=short)
            except ValidationError as exc:
                raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return short

    def backtest_config(self) -> BacktestConfig:
        """The backtest options whose rule decides the signals."""
        return BacktestConfig(
            long_threshold=self.long_threshold,
            short_threshold=self.short_threshold,
            mode=self.mode,
        )


class Signal(BaseModel):
    """One symbol's signal and the prediction behind it."""

    symbol: str
    signal: Literal["long", "flat", "short"]
    position: int
    direction_probability: float
    predicted_return: float
    feature_time: datetime


class SignalsResponse(BaseModel):
    """The signals of one request, with the rule and the model whose probabilities they use."""

    horizon_hours: int
    long_threshold: float
    short_threshold: float
    mode: str
    model_name: str
    model_version: int
    served_at: datetime
    signals: list[Signal]


class SignalService:
    """Turns the latest predictions of a :class:`PricePredictionService` into signals.

    Args:
        predictions: the prediction service whose cached latest predictions are used.
    """

    def __init__(self, predictions: PricePredictionService) -> None:
        self.predictions = predictions

    def signals(
        self, request: SignalsRequest, *, latest: LatestPredictions | None = None
    ) -> SignalsResponse:
        """Signal each requested symbol; raise :class:`RequestError` naming a bad field.

        ``RequestError.field`` is ``"horizon"`` for a horizon the model lacks and ``"symbols"``
        for symbols the gold table does not hold (the message names them).

        Args:
            request: the symbols, horizon and rule.
            latest: the predictions to signal from; default None: the prediction service's
                latest. Pass one snapshot to build several answers from the same model.

        Raises:
            NoChampionError: no model is loaded yet (only when ``latest`` is None).
        """
        if latest is None:
            self.predictions.require_horizon(request.horizon)  # before reading gold
            latest = self.predictions.latest_predictions()
        latest.require_horizon(request.horizon)
        symbols = select_symbols(request.symbols, sorted(latest.frame["symbol"].to_list()))
        h = request.horizon
        rows = (
            pl.DataFrame({"symbol": symbols}, schema={"symbol": pl.String})
            .join(latest.frame, on="symbol", how="left", maintain_order="left")
            .select(
                "symbol",
                "ts",
                pl.col(f"direction_probability_{h}h").alias("probability"),
                pl.col(f"predicted_return_{h}h").alias("predicted_return"),
            )
        )
        positions = positions_from_probabilities(
            rows["probability"].to_numpy(), request.backtest_config()
        )
        model = latest.model
        return SignalsResponse(
            horizon_hours=h,
            long_threshold=request.long_threshold,
            short_threshold=request.short_threshold,
            mode=request.mode,
            model_name=model.name,
            model_version=model.version,
            served_at=datetime.now(UTC),
            signals=[
                Signal(
                    symbol=row["symbol"],
                    signal=SIGNAL_NAMES[float(position)],  # type: ignore[arg-type]
                    position=int(position),
                    direction_probability=float(row["probability"]),
                    predicted_return=float(row["predicted_return"]),
                    feature_time=row["ts"],
                )
                for row, position in zip(rows.iter_rows(named=True), positions, strict=True)
            ],
        )
