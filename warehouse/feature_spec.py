"""The gold feature set, declared once: name, description, formula and the Polars expression.

:mod:`warehouse.features` documents the conventions (point in time, windows, gaps, nulls) and
runs these expressions. Each expression reads the candle columns (``symbol, ts, open, high, low,
close, volume``) and the helper columns that :mod:`warehouse.features` prepares first; helper
names start with an underscore and never reach the output. The helper stages below are applied in
order with ``LazyFrame.with_columns`` before the features are selected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

HORIZONS: tuple[int, ...] = (1, 2, 4, 24)
"""Forward horizons of the targets, in hours."""

RETURN_HOURS: tuple[int, ...] = (1, 2, 4, 6, 12, 24, 72, 168)
"""Backward return windows, in hours (the closes these need are looked up by timestamp)."""

MIN_WINDOW_COVERAGE = 0.75
"""A rolling statistic over N hours is null unless at least ``ceil(0.75 * N)`` values are in it."""

EMA_WARMUP_HOURS = 96
"""Recursive indicators are null unless the trailing 96 h hold ``ceil(0.75 * 96)`` candles."""

SENTIMENT_POSITIVE = 0.05
"""A post counts as positive when its score is above this."""

FEAR_GREED_MAX_AGE_HOURS = 48
"""A Fear & Greed value older than this at the candle close is not used (null instead)."""

BETA_HOURS = 168
"""Window of the rolling beta and correlation to the market (BTC) factor."""

SENTIMENT_WINDOWS: tuple[int, ...] = (1, 24, 168)
"""Windows (hours) over which post counts and score sums are prepared."""

TS = "ts"
SYMBOL = "symbol"


def close_ago(hours: int) -> str:
    """Helper column: the symbol's close exactly ``hours`` before the row (null when missing)."""
    return f"_close_{hours}h_ago"


def close_ahead(hours: int) -> str:
    """Helper column: the symbol's close exactly ``hours`` after the row (null when missing)."""
    return f"_close_in_{hours}h"


def sentiment_helper(scope: str, stat: str, hours: int) -> str:
    """Helper column of post aggregates: scope ``sym``/``mkt``, stat ``n``/``sum``/``pos``."""
    return f"_{scope}_{stat}_{hours}h"


BTC_LOG_RETURN_1H = "_btc_log_return_1h"
BTC_RETURN_1H = "_btc_return_1h"
BTC_RETURN_24H = "_btc_return_24h"
FEAR_GREED_VALUE = "_fear_greed"

_c = pl.col


def _min_samples(hours: int, *, at_least: int = 1) -> int:
    return max(at_least, math.ceil(MIN_WINDOW_COVERAGE * hours))


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, null where the denominator is zero or null."""
    return pl.when(denominator != 0).then(numerator / denominator)


def _mean(column: str | pl.Expr, hours: int) -> pl.Expr:
    expr = _c(column) if isinstance(column, str) else column
    return expr.rolling_mean_by(TS, f"{hours}h", min_samples=_min_samples(hours)).over(SYMBOL)


def _std(column: str | pl.Expr, hours: int) -> pl.Expr:
    expr = _c(column) if isinstance(column, str) else column
    return expr.rolling_std_by(TS, f"{hours}h", min_samples=_min_samples(hours, at_least=2)).over(
        SYMBOL
    )


def _half_life(alpha: float) -> str:
    """The half-life (in whole microseconds) whose hourly decay is ``1 - alpha``."""
    return f"{round(math.log(2) / -math.log1p(-alpha) * 3_600_000_000)}us"


def ema_alpha(span: int) -> float:
    """Smoothing factor of an EMA with the given span: ``2 / (span + 1)``."""
    return 2.0 / (span + 1)


def _ema(expr: pl.Expr, alpha: float) -> pl.Expr:
    return expr.ewm_mean_by(TS, half_life=_half_life(alpha)).over(SYMBOL)


_warm = _c("_rows_warmup") >= _min_samples(EMA_WARMUP_HOURS)

# Helper stages, applied in order. Each stage only reads columns of earlier stages.
HELPER_STAGES: tuple[tuple[pl.Expr, ...], ...] = (
    (
        _c("close").shift(1).over(SYMBOL).alias("_prev_close"),
        (_c("close") / _c(close_ago(1))).log().alias("_log_return_1h"),
        _c("close")
        .is_not_null()
        .cast(pl.Int32)
        .rolling_sum_by(TS, f"{EMA_WARMUP_HOURS}h")
        .over(SYMBOL)
        .alias("_rows_warmup"),
    ),
    (
        pl.when(_c(BTC_LOG_RETURN_1H).is_not_null()).then(_c("_log_return_1h")).alias("_pair_x"),
        pl.when(_c("_log_return_1h").is_not_null()).then(_c(BTC_LOG_RETURN_1H)).alias("_pair_y"),
        _ema(_c("close"), ema_alpha(12)).alias("_ema_12h"),
        _ema(_c("close"), ema_alpha(26)).alias("_ema_26h"),
        _ema((_c("close") - _c("_prev_close")).clip(lower_bound=0.0), 1 / 14).alias("_rsi_gain"),
        _ema((_c("_prev_close") - _c("close")).clip(lower_bound=0.0), 1 / 14).alias("_rsi_loss"),
        _ema(
            pl.max_horizontal(
                _c("high") - _c("low"),
                (_c("high") - _c("_prev_close")).abs(),
                (_c("low") - _c("_prev_close")).abs(),
            ),
            1 / 14,
        ).alias("_atr_14h"),
    ),
    (
        (_c("_ema_12h") - _c("_ema_26h")).alias("_macd"),
        _mean(_c("_pair_x") * _c("_pair_y"), BETA_HOURS).alias("_m_xy"),
        _mean(_c("_pair_x") * _c("_pair_x"), BETA_HOURS).alias("_m_xx"),
        _mean(_c("_pair_y") * _c("_pair_y"), BETA_HOURS).alias("_m_yy"),
        _mean("_pair_x", BETA_HOURS).alias("_m_x"),
        _mean("_pair_y", BETA_HOURS).alias("_m_y"),
    ),
    (
        _ema(_c("_macd"), ema_alpha(9)).alias("_macd_signal"),
        (_c("_m_xy") - _c("_m_x") * _c("_m_y")).alias("_cov_xy"),
        (_c("_m_xx") - _c("_m_x") ** 2).alias("_var_x"),
        (_c("_m_yy") - _c("_m_y") ** 2).alias("_var_y"),
    ),
)


@dataclass(frozen=True)
class FeatureDef:
    """One gold feature: its column name, what it means, and how it is computed.

    Attributes:
        name: Output column name.
        description: One sentence for people (README, Dagster metadata).
        formula: Human-readable formula, e.g. ``close / close(t-24h) - 1``.
        expr: The Polars expression over candle and helper columns (not compared or hashed).
    """

    name: str
    description: str
    formula: str
    expr: pl.Expr = field(compare=False, hash=False, repr=False)


def _returns() -> list[FeatureDef]:
    out = [
        FeatureDef(
            f"return_{h}h",
            f"Simple return over the last {h} h.",
            f"close / close(t-{h}h) - 1",
            _c("close") / _c(close_ago(h)) - 1,
        )
        for h in RETURN_HOURS
    ]
    out += [
        FeatureDef(
            f"log_return_{h}h",
            f"Log return over the last {h} h.",
            f"ln(close / close(t-{h}h))",
            (_c("close") / _c(close_ago(h))).log(),
        )
        for h in RETURN_HOURS
    ]
    return out


def _trend() -> list[FeatureDef]:
    out = [
        FeatureDef(
            f"realised_vol_{h}h",
            f"Sample std of 1 h log returns in the last {h} h.",
            f"std(log_return_1h over (t-{h}h, t])",
            _std("_log_return_1h", h),
        )
        for h in (6, 24, 72, 168)
    ]
    out += [
        FeatureDef(
            f"sma_ratio_{h}h",
            f"Close relative to its {h} h simple moving average.",
            f"close / mean(close over (t-{h}h, t]) - 1",
            _c("close") / _mean("close", h) - 1,
        )
        for h in (12, 24, 72, 168)
    ]
    out += [
        FeatureDef(
            f"ema_ratio_{span}h",
            f"Close relative to its EMA of span {span} h.",
            f"close / ema(close, span={span}) - 1",
            pl.when(_warm).then(_c("close") / _c(f"_ema_{span}h") - 1),
        )
        for span in (12, 26)
    ]
    macd = "ema(close, 12) - ema(close, 26)"
    out += [
        _macd_def("macd", "MACD line over the close.", f"({macd}) / close", _c("_macd")),
        _macd_def(
            "macd_signal",
            "MACD signal line (EMA 9 of MACD) over the close.",
            f"ema({macd}, span=9) / close",
            _c("_macd_signal"),
        ),
        _macd_def(
            "macd_hist",
            "MACD histogram over the close.",
            "macd - macd_signal",
            _c("_macd") - _c("_macd_signal"),
        ),
    ]
    return out


def _macd_def(name: str, description: str, formula: str, raw: pl.Expr) -> FeatureDef:
    return FeatureDef(name, description, formula, pl.when(_warm).then(raw / _c("close")))


def _oscillators() -> list[FeatureDef]:
    mean20, std20 = _mean("close", 20), _std("close", 20)
    return [
        FeatureDef(
            "rsi_14h",
            "Wilder RSI over 14 h, in [0, 100].",
            "100 * wilder(gain, 14) / (wilder(gain, 14) + wilder(loss, 14))",
            pl.when(_warm).then(100 * _ratio(_c("_rsi_gain"), _c("_rsi_gain") + _c("_rsi_loss"))),
        ),
        FeatureDef(
            "bollinger_pct_b_20h",
            "Position of the close in the 20 h Bollinger band (0 = lower, 1 = upper).",
            "(close - (sma20 - 2 std20)) / (4 std20)",
            _ratio(_c("close") - mean20 + 2 * std20, 4 * std20),
        ),
        FeatureDef(
            "bollinger_width_20h",
            "Width of the 20 h Bollinger band relative to its middle.",
            "4 std20 / sma20",
            _ratio(4 * std20, mean20),
        ),
        FeatureDef(
            "atr_14h",
            "Wilder average true range over 14 h, over the close.",
            "wilder(max(high-low, |high-prev_close|, |low-prev_close|), 14) / close",
            pl.when(_warm).then(_c("_atr_14h") / _c("close")),
        ),
        FeatureDef(
            "hl_range",
            "High-low range of the bar over the close.",
            "(high - low) / close",
            (_c("high") - _c("low")) / _c("close"),
        ),
        FeatureDef(
            "close_position",
            "Where the close sits in the bar's range (0 = low, 1 = high).",
            "(close - low) / (high - low)",
            _ratio(_c("close") - _c("low"), _c("high") - _c("low")),
        ),
    ]


def _volume() -> list[FeatureDef]:
    out = [
        FeatureDef(
            f"volume_zscore_{h}h",
            f"Volume z-score against the last {h} h.",
            f"(volume - mean(volume, {h}h)) / std(volume, {h}h)",
            _ratio(_c("volume") - _mean("volume", h), _std("volume", h)),
        )
        for h in (24, 168)
    ]
    out.append(
        FeatureDef(
            "volume_ratio_24h",
            "Volume over its 24 h mean.",
            "volume / mean(volume, 24h)",
            _ratio(_c("volume"), _mean("volume", 24)),
        )
    )
    return out


def _market() -> list[FeatureDef]:
    return [
        FeatureDef(
            "btc_return_1h",
            "Market factor: BTC simple return over the last 1 h (null without BTC).",
            "btc_close / btc_close(t-1h) - 1",
            _c(BTC_RETURN_1H),
        ),
        FeatureDef(
            "btc_return_24h",
            "Market factor: BTC simple return over the last 24 h (null without BTC).",
            "btc_close / btc_close(t-24h) - 1",
            _c(BTC_RETURN_24H),
        ),
        FeatureDef(
            "btc_beta_168h",
            "Beta of 1 h log returns to BTC's over 168 h (paired hours only).",
            "cov(r, r_btc) / var(r_btc) over (t-168h, t]",
            _ratio(_c("_cov_xy"), pl.when(_c("_var_y") > 0).then(_c("_var_y"))),
        ),
        FeatureDef(
            "btc_corr_168h",
            "Correlation of 1 h log returns with BTC's over 168 h (paired hours only).",
            "cov(r, r_btc) / sqrt(var(r) var(r_btc)) over (t-168h, t]",
            _ratio(
                _c("_cov_xy"),
                pl.when((_c("_var_x") > 0) & (_c("_var_y") > 0)).then(
                    (_c("_var_x") * _c("_var_y")).sqrt()
                ),
            ).clip(-1.0, 1.0),
        ),
    ]


def _calendar() -> list[FeatureDef]:
    hour = _c(TS).dt.hour().cast(pl.Float64) * (2 * math.pi / 24)
    dow = (_c(TS).dt.weekday() - 1).cast(pl.Float64) * (2 * math.pi / 7)
    return [
        FeatureDef("hour_sin", "Hour of day (UTC), sine.", "sin(2 pi hour / 24)", hour.sin()),
        FeatureDef("hour_cos", "Hour of day (UTC), cosine.", "cos(2 pi hour / 24)", hour.cos()),
        FeatureDef("dow_sin", "Day of week (Mon = 0), sine.", "sin(2 pi dow / 7)", dow.sin()),
        FeatureDef("dow_cos", "Day of week (Mon = 0), cosine.", "cos(2 pi dow / 7)", dow.cos()),
        FeatureDef(
            "is_weekend",
            "1 on Saturday and Sunday (UTC), else 0.",
            "dow in (5, 6)",
            _c(TS).dt.weekday() >= 6,
        ),
    ]


def _sentiment(scope: str, prefix: str, who: str) -> list[FeatureDef]:
    def helper(stat: str, hours: int) -> pl.Expr:
        return _c(sentiment_helper(scope, stat, hours))

    def mean(hours: int) -> pl.Expr:
        return _ratio(helper("sum", hours), helper("n", hours))

    return [
        FeatureDef(
            f"{prefix}_count_1h",
            f"Scored posts {who} in the candle's hour (0 without sentiment input).",
            "count(posts in [ts, ts+1h))",
            helper("n", 1),
        ),
        FeatureDef(
            f"{prefix}_mean_1h",
            f"Mean score of posts {who} in the candle's hour (null without posts).",
            "mean(score of posts in [ts, ts+1h))",
            mean(1),
        ),
        FeatureDef(
            f"{prefix}_positive_share_1h",
            f"Share of posts {who} in the hour scoring above {SENTIMENT_POSITIVE}.",
            f"count(score > {SENTIMENT_POSITIVE}) / count(posts in [ts, ts+1h))",
            _ratio(helper("pos", 1), helper("n", 1)),
        ),
        FeatureDef(
            f"{prefix}_momentum",
            f"Mean score of posts {who} over 24 h minus over 168 h.",
            "mean(score, posts in [ts-23h, ts+1h)) - mean(score, posts in [ts-167h, ts+1h))",
            mean(24) - mean(168),
        ),
    ]


def _fear_greed() -> list[FeatureDef]:
    return [
        FeatureDef(
            "fear_greed",
            "Latest Fear & Greed index (0-100) published before the candle close.",
            f"asof(value, published < ts+1h, age <= {FEAR_GREED_MAX_AGE_HOURS}h)",
            _c(FEAR_GREED_VALUE),
        )
    ]


_GROUPS: tuple[Callable[[], list[FeatureDef]], ...] = (
    _returns,
    _trend,
    _oscillators,
    _volume,
    _market,
    _calendar,
    lambda: _sentiment("sym", "sentiment", "naming the symbol"),
    lambda: _sentiment("mkt", "market_sentiment", "market-wide (all posts)"),
    _fear_greed,
)

FEATURES: tuple[FeatureDef, ...] = tuple(f for group in _GROUPS for f in group())
"""Every gold feature, in output column order."""
