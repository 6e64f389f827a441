"""Lake frames to the dashboard's payloads: pure Polars functions, no I/O.

Indicators are rebuilt in price units from gold's scale-free columns and the candle's close
(``close`` is not stored in gold):

* ``sma_{h} = close / (1 + sma_ratio_{h}h)``, ``ema_12 = close / (1 + ema_ratio_12h)``;
* Bollinger: with ``b = bollinger_pct_b_20h`` and ``w = bollinger_width_20h`` (``4 std / mean``),
  the middle is ``close / (1 + w (b - 0.5))`` and the bands are ``middle (1 ± w / 2)``;
* ``macd``, ``macd_signal``, ``macd_hist`` are stored over the close: times ``close``.

Outcomes join ``gold/predictions`` with gold's ``target_return_{h}h`` of the same symbol and
hour (hit: ``P(up) > 0.5`` matches a realised return ``> 0``, the rule of
:func:`training.predictions.live_accuracy`). The rolling sentiment of a symbol at an hour is the
mean score of the posts naming it over the trailing ``window_hours``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from serving.board_model import (
    Accuracy,
    Bar,
    HorizonPrediction,
    HorizonQuality,
    IndicatorRow,
    Outcome,
    Post,
    SentimentPoint,
    SymbolPredictions,
    SymbolSentiment,
)
from serving.predictions import LatestPredictions
from serving.signals import SIGNAL_NAMES
from training.backtest import BacktestConfig, positions_from_probabilities
from training.metrics import wilson_interval

UTC_US = pl.Datetime("us", "UTC")
CANDLE_COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]
INDICATOR_INPUTS = [
    "symbol",
    "ts",
    "sma_ratio_24h",
    "sma_ratio_72h",
    "ema_ratio_12h",
    "bollinger_pct_b_20h",
    "bollinger_width_20h",
    "rsi_14h",
    "macd",
    "macd_signal",
    "macd_hist",
]
"""The gold columns the chart indicators are rebuilt from (see the module docstring)."""
POST_COLUMNS = ["post_id", "ts", "platform", "author", "text", "symbols", "score", "label"]


def epoch_s(ts: datetime) -> int:
    """``ts`` as Unix seconds (a naive time is taken as UTC)."""
    moment = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _seconds(column: str = "ts") -> pl.Expr:
    return pl.col(column).cast(UTC_US).dt.epoch("s").alias("time")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def chart_bars(candles: pl.DataFrame) -> dict[str, list[Bar]]:
    """Per symbol, its candles oldest first (``candles``: at least :data:`CANDLE_COLUMNS`)."""
    frame = candles.select(pl.col("symbol"), _seconds(), *CANDLE_COLUMNS[2:]).sort("symbol", "time")
    out: dict[str, list[Bar]] = {}
    for row in frame.iter_rows(named=True):
        symbol = row.pop("symbol")
        if all(_finite(row[k]) is not None for k in ("open", "high", "low", "close")):
            row["volume"] = _finite(row["volume"]) or 0.0
            out.setdefault(symbol, []).append(Bar(**row))
    return out


def indicator_rows(gold: pl.DataFrame, candles: pl.DataFrame) -> dict[str, list[IndicatorRow]]:
    """Per symbol, the chart indicators of each gold row that has a candle, oldest first.

    Args:
        gold: gold rows with :data:`INDICATOR_INPUTS` (missing columns give nulls).
        candles: silver candles with ``symbol, ts, close``.
    """
    present = [c for c in INDICATOR_INPUTS if c in gold.columns]
    missing = [
        pl.lit(None, dtype=pl.Float64).alias(c) for c in INDICATOR_INPUTS if c not in present
    ]
    close = pl.col("close")
    width, pct_b = pl.col("bollinger_width_20h"), pl.col("bollinger_pct_b_20h")
    middle = close / (1 + width * (pct_b - 0.5))
    frame = (
        gold.select(present)
        .with_columns(*missing, pl.col("ts").cast(UTC_US))
        .join(
            candles.select("symbol", pl.col("ts").cast(UTC_US), "close"),
            on=["symbol", "ts"],
            how="inner",
        )
        .select(
            "symbol",
            _seconds(),
            (close / (1 + pl.col("sma_ratio_24h"))).alias("sma_24"),
            (close / (1 + pl.col("sma_ratio_72h"))).alias("sma_72"),
            (close / (1 + pl.col("ema_ratio_12h"))).alias("ema_12"),
            middle.alias("bb_mid"),
            (middle * (1 + width / 2)).alias("bb_upper"),
            (middle * (1 - width / 2)).alias("bb_lower"),
            pl.col("rsi_14h").alias("rsi"),
            (pl.col("macd") * close).alias("macd"),
            (pl.col("macd_signal") * close).alias("macd_signal"),
            (pl.col("macd_hist") * close).alias("macd_hist"),
        )
        .sort("symbol", "time")
    )
    out: dict[str, list[IndicatorRow]] = {}
    for row in frame.iter_rows(named=True):
        symbol = row.pop("symbol")
        values = {k: (v if k == "time" else _finite(v)) for k, v in row.items()}
        out.setdefault(symbol, []).append(IndicatorRow(**values))
    return out


def horizon_predictions(
    latest: LatestPredictions,
    closes: dict[str, float],
    *,
    rule: BacktestConfig | None = None,
) -> list[SymbolPredictions]:
    """Each symbol's latest prediction per horizon, with its signal and expected close.

    Args:
        latest: the prediction service's latest predictions (one model).
        closes: per symbol, the close of the candle at the prediction's feature time (missing:
            no expected close).
        rule: thresholds and mode of the signal; default None: ``BacktestConfig()``, the rule of
            ``POST /signals`` with its defaults.
    """
    config = rule or BacktestConfig()
    frame = latest.frame.sort("symbol")
    horizons = latest.horizons
    positions = {
        h: positions_from_probabilities(frame[f"direction_probability_{h}h"].to_numpy(), config)
        for h in horizons
    }
    out = []
    for i, row in enumerate(frame.iter_rows(named=True)):
        feature_time = epoch_s(row["ts"])
        close = closes.get(row["symbol"])
        entries = []
        for h in horizons:
            probability = float(row[f"direction_probability_{h}h"])
            predicted = float(row[f"predicted_return_{h}h"])
            entries.append(
                HorizonPrediction(
                    horizon_hours=h,
                    direction="up" if probability > 0.5 else "down",
                    direction_probability=probability,
                    predicted_return=predicted,
                    expected_close=None if close is None else close * (1 + predicted),
                    target_time=feature_time + 3600 * h,
                    signal=SIGNAL_NAMES[float(positions[h][i])],  # type: ignore[arg-type]
                )
            )
        out.append(
            SymbolPredictions(
                symbol=row["symbol"], feature_time=feature_time, close=close, horizons=entries
            )
        )
    return out


def scored_predictions(predictions: pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """Prediction rows joined with their realised return (null while pending) and ``hit``.

    Args:
        predictions: rows with ``symbol, ts, horizon_hours, direction_probability``.
        gold: gold rows with ``symbol, ts`` and ``target_return_{h}h`` columns.
    """
    keyed = predictions.with_columns(
        pl.col("ts").cast(UTC_US), pl.col("horizon_hours").cast(pl.Int32)
    )
    horizons = sorted(keyed["horizon_hours"].unique().to_list())
    targets = [
        gold.select(
            "symbol",
            pl.col("ts").cast(UTC_US),
            pl.lit(h, dtype=pl.Int32).alias("horizon_hours"),
            pl.col(f"target_return_{h}h").cast(pl.Float64).alias("realised_return"),
        )
        for h in horizons
        if f"target_return_{h}h" in gold.columns
    ]
    if targets:
        keyed = keyed.join(pl.concat(targets), on=["symbol", "ts", "horizon_hours"], how="left")
    else:
        keyed = keyed.with_columns(pl.lit(None, dtype=pl.Float64).alias("realised_return"))
    return keyed.with_columns(
        pl.when(pl.col("realised_return").is_not_null())
        .then((pl.col("direction_probability") > 0.5) == (pl.col("realised_return") > 0))
        .alias("hit")
    )


def outcomes_by_symbol(scored: pl.DataFrame) -> dict[str, list[Outcome]]:
    """:func:`scored_predictions` rows as :class:`Outcome` per symbol, oldest first."""
    frame = scored.select(
        "symbol",
        _seconds(),
        "horizon_hours",
        (pl.col("direction_probability") > 0.5).alias("up"),
        "direction_probability",
        "realised_return",
        "hit",
    ).sort("symbol", "time", "horizon_hours")
    out: dict[str, list[Outcome]] = {}
    for row in frame.iter_rows(named=True):
        out.setdefault(row.pop("symbol"), []).append(Outcome(**row))
    return out


def live_quality(scored: pl.DataFrame, gold: pl.DataFrame) -> list[HorizonQuality]:
    """Live directional accuracy per horizon beside two naive baselines on the same rows.

    The baselines call every scored hour: ``always_up`` (the base rate) and ``persistence``
    (up when the last hour's return ``return_1h`` was positive). Intervals are 95 % Wilson.

    Args:
        scored: :func:`scored_predictions` rows of one model version.
        gold: gold rows with ``symbol, ts, return_1h`` (for persistence).
    """
    realised = scored.filter(pl.col("realised_return").is_not_null())
    if "return_1h" in gold.columns:
        last = gold.select("symbol", pl.col("ts").cast(UTC_US), "return_1h")
        realised = realised.join(last, on=["symbol", "ts"], how="left")
    else:
        realised = realised.with_columns(pl.lit(None, dtype=pl.Float64).alias("return_1h"))
    out = []
    for h in sorted(scored["horizon_hours"].unique().to_list()):
        rows = realised.filter(pl.col("horizon_hours") == h)
        pending = scored.filter(
            (pl.col("horizon_hours") == h) & pl.col("realised_return").is_null()
        ).height
        up = (rows["realised_return"] > 0).to_list()
        persistence = rows.filter(pl.col("return_1h").is_not_null())
        out.append(
            HorizonQuality(
                horizon_hours=int(h),
                model=_accuracy(rows["hit"].to_list()),
                baselines={
                    "always_up": _accuracy(up),
                    "persistence": _accuracy(
                        (
                            (persistence["return_1h"] > 0) == (persistence["realised_return"] > 0)
                        ).to_list()
                    ),
                },
                pending=pending,
            )
        )
    return out


def _accuracy(hits: Sequence[bool | None]) -> Accuracy:
    values = [bool(h) for h in hits if h is not None]
    if not values:
        return Accuracy(accuracy=None, n=0)
    low, high = wilson_interval(sum(values), len(values))
    return Accuracy(accuracy=sum(values) / len(values), ci_low=low, ci_high=high, n=len(values))


def post_rows(posts: pl.DataFrame, *, limit: int) -> list[Post]:
    """The ``limit`` newest posts, newest first (columns missing from ``posts`` are null)."""
    frame = posts.with_columns(
        [pl.lit(None).alias(c) for c in POST_COLUMNS if c not in posts.columns]
    )
    newest = frame.select(POST_COLUMNS).sort("ts", "post_id", descending=True).head(limit)
    return [
        Post(
            post_id=str(row["post_id"]),
            ts=row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=UTC),
            platform=row["platform"],
            author=row["author"],
            text=row["text"] or "",
            symbols=list(row["symbols"] or []),
            score=_finite(row["score"]),
            label=row["label"],
        )
        for row in newest.iter_rows(named=True)
    ]


def rolling_sentiment(
    posts: pl.DataFrame, *, window_hours: int = 24, since: datetime | None = None
) -> list[SymbolSentiment]:
    """Per symbol, the mean score of the posts naming it over the trailing ``window_hours``,
    at every hour that has such posts (hours with none in the window are left out).

    Args:
        posts: silver posts with ``ts, symbols, score``.
        window_hours: the trailing window; default 24.
        since: leave out points before this time; default None: all.
    """
    hourly = (
        posts.select(pl.col("ts").cast(UTC_US), "symbols", "score")
        .filter(pl.col("score").is_not_null())
        .explode("symbols")
        .filter(pl.col("symbols").is_not_null())
        .with_columns(pl.col("ts").dt.truncate("1h"))
        .group_by("symbols", "ts")
        .agg(pl.col("score").sum().alias("total"), pl.len().alias("n"))
        .sort("symbols", "ts")
    )
    if hourly.is_empty():
        return []
    period = f"{window_hours}h"
    frame = hourly.with_columns(
        pl.col("total").rolling_sum_by("ts", period).over("symbols").alias("total"),
        pl.col("n").rolling_sum_by("ts", period).over("symbols").alias("n"),
    )
    if since is not None:
        frame = frame.filter(pl.col("ts") >= since)
    out = []
    for (symbol,), rows in frame.group_by("symbols", maintain_order=True):
        points = [
            SentimentPoint(time=epoch_s(ts), score=total / n, posts=int(n))
            for ts, total, n in rows.select("ts", "total", "n").iter_rows()
            if n
        ]
        out.append(SymbolSentiment(symbol=str(symbol), points=points))
    return out
