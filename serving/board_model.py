"""The live dashboard's data model: every message ``/ws`` sends and the page renders.

One envelope, ``{"type": ..., "payload": ...}``, five types (see :data:`MESSAGE_TYPES`):

* ``snapshot`` (:class:`Snapshot`): on connect, everything the page shows;
* ``price_update`` (:class:`PriceUpdate`): new or changed candles and indicator rows per symbol,
  and the market table (prices, 24 h figures, Fear & Greed, breadth) when it moved;
* ``prediction_update`` (:class:`PredictionBoard`): the champion's latest prediction per symbol
  and horizon with the model version, past predictions marked hit or miss, and the model quality;
* ``sentiment_update`` (:class:`SentimentBoard`): newly scored posts and the rolling score;
* ``status`` (:class:`SystemStatus`): lag per topic, newest row per layer, champion, checks.

A paper-portfolio change is sent as ``portfolio_update`` (:class:`PortfolioBoard`). Chart times
(``time``) are Unix seconds (UTC), as lightweight-charts takes them; other times are ISO 8601.
A section with nothing to show carries a ``note`` that says why, which the page shows instead.
The same models answer ``GET /dashboard/snapshot.json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serving.market import MarketResponse

MessageType = Literal[
    "snapshot",
    "price_update",
    "prediction_update",
    "sentiment_update",
    "status",
    "portfolio_update",
]
MESSAGE_TYPES: tuple[str, ...] = (
    "snapshot",
    "price_update",
    "prediction_update",
    "sentiment_update",
    "status",
    "portfolio_update",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bar(_Model):
    """One hourly candle of ``silver/candles``."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class IndicatorRow(_Model):
    """The chart indicators of one gold row, in price units (rebuilt from gold's ratios).

    ``sma_24``/``sma_72``: simple moving averages; ``ema_12``: exponential one;
    ``bb_mid``/``bb_upper``/``bb_lower``: the 20 h Bollinger band (mean ± 2 std);
    ``rsi``: RSI 14 h in [0, 100]; ``macd``/``macd_signal``/``macd_hist``: MACD in price units.
    """

    time: int
    sma_24: float | None = None
    sma_72: float | None = None
    ema_12: float | None = None
    bb_mid: float | None = None
    bb_upper: float | None = None
    bb_lower: float | None = None
    rsi: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None


class SymbolChart(_Model):
    """The candles and indicator rows of one symbol (all of them, or only what changed)."""

    symbol: str
    candles: list[Bar] = []
    indicators: list[IndicatorRow] = []


class PriceUpdate(_Model):
    """Prices: chart rows per symbol and the market table; ``note`` says why there are none."""

    symbols: list[SymbolChart] = []
    market: MarketResponse | None = None
    chart_hours: int | None = None
    note: str | None = None


class HorizonPrediction(_Model):
    """The champion's latest prediction of one symbol over one horizon, and its signal."""

    horizon_hours: int
    direction: Literal["up", "down"]
    direction_probability: float
    predicted_return: float
    expected_close: float | None
    target_time: int
    signal: Literal["long", "flat", "short"]


class Outcome(_Model):
    """A past batch prediction (``gold/predictions``) and what happened.

    ``hit`` is None while the target is not realised yet (pending).
    """

    time: int
    horizon_hours: int
    up: bool
    direction_probability: float
    realised_return: float | None
    hit: bool | None


class SymbolPredictions(_Model):
    """One symbol's latest predictions (every horizon) and its recent outcomes."""

    symbol: str
    feature_time: int
    close: float | None
    horizons: list[HorizonPrediction] = []
    outcomes: list[Outcome] = []


class Accuracy(_Model):
    """A directional accuracy with its 95 % interval over ``n`` scored predictions."""

    accuracy: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


class HorizonQuality(_Model):
    """The model beside the naive baselines on one horizon (test split or live)."""

    horizon_hours: int
    model: Accuracy
    baselines: dict[str, Accuracy] = {}
    pending: int | None = None


class ModelQuality(_Model):
    """The champion, the data it was trained on, and how it scores against the baselines.

    Attributes:
        model_name: the registered model.
        model_version: the champion's version.
        run_id: its MLflow run.
        training_data: the table versions it was trained on (``gold/features`` and, from the
            gold commit's metadata, the silver tables gold was built from).
        validation: pooled validation accuracy of the model and of each baseline.
        test: per horizon on the held-out test split, with Wilson intervals.
        live: per horizon on ``gold/predictions`` of this version joined with outcomes.
        beats_baselines: whether the model beat every baseline on validation.
        warnings: what the page shows in red (e.g. a baseline beats the champion).
    """

    model_name: str | None = None
    model_version: int | None = None
    run_id: str | None = None
    training_data: dict[str, str] = {}
    validation: dict[str, float] = {}
    test: list[HorizonQuality] = []
    live: list[HorizonQuality] = []
    beats_baselines: bool | None = None
    warnings: list[str] = []
    note: str | None = None


class PredictionBoard(_Model):
    """The champion's predictions for the page; the signal rule is the service's default."""

    model_name: str | None = None
    model_version: int | None = None
    long_threshold: float = 0.55
    short_threshold: float = 0.45
    outcomes_model_version: int | None = None
    symbols: list[SymbolPredictions] = []
    quality: ModelQuality | None = None
    note: str | None = None
    outcomes_note: str | None = None


class Post(_Model):
    """One scored post of ``silver/posts``."""

    post_id: str
    ts: datetime
    platform: str | None
    author: str | None
    text: str
    symbols: list[str]
    score: float | None
    label: str | None


class SentimentPoint(_Model):
    """The mean score of the posts naming a symbol over the trailing window, at an hour."""

    time: int
    score: float
    posts: int


class SymbolSentiment(_Model):
    symbol: str
    points: list[SentimentPoint]


class SentimentBoard(_Model):
    """Newest posts (newest first; in an update: only the new ones) and the rolling score."""

    posts: list[Post] = []
    rolling: list[SymbolSentiment] = []
    window_hours: int = 24
    total_posts: int = 0
    note: str | None = None


class PortfolioBoard(_Model):
    """The paper-trading ledger (``gold/paper_trades``, ``gold/paper_equity``) as plain rows."""

    trades: list[dict[str, Any]] = []
    equity: list[dict[str, Any]] = []
    note: str | None = None


class LayerStatus(_Model):
    """The newest event time of a layer's table and its Delta version (None: not there)."""

    layer: str
    table: str
    newest: datetime | None
    version: int | None


class CheckStatus(_Model):
    """A data check run by the service on what it reads."""

    name: str
    passed: bool
    description: str


class SystemStatus(_Model):
    """Lag per topic, freshness per layer, the champion served, failing checks."""

    generated_at: datetime
    lag: dict[str, int | str] = {}
    lag_note: str | None = None
    layers: list[LayerStatus] = []
    champion: str | None = None
    champion_version: int | None = None
    checks: list[CheckStatus] = []
    clients: int = 0


class Snapshot(_Model):
    """Everything the page shows, sent once on connect."""

    generated_at: datetime
    started_at: datetime | None
    prices: PriceUpdate
    predictions: PredictionBoard
    sentiment: SentimentBoard
    portfolio: PortfolioBoard
    status: SystemStatus


def message(kind: MessageType, payload: BaseModel) -> str:
    """The JSON text of one ``/ws`` message: ``{"type": kind, "payload": payload}``."""
    return '{"type":"%s","payload":%s}' % (kind, payload.model_dump_json())  # noqa: UP031
