"""A model and its baselines on the same rows of a gold frame: metrics per horizon, backtest.

One code path serves the training run's test split, the champion gate's validation split, every
walk-forward fold and ``marketlake evaluate --file``:

1. :func:`score_samples` predicts with the model at every evaluated row that has a full window,
   fits the baselines (majority, persistence, linear, random walk) on the *fit* rows only, and
   returns one long frame of per-sample predictions (``symbol, ts, horizon_hours, realised_return,
   next_1h_return`` then ``{who}_return, {who}_prob`` per predictor).
2. :func:`horizon_report` turns samples into metrics per horizon (and :func:`symbol_report` per
   symbol), the model with ``p_value_vs_best_baseline`` (one-sided exact McNemar against the
   baseline with the best directional accuracy on the same rows).
3. :func:`backtest_report` trades each horizon's probability hourly on the 1 h return (the
   non-overlapping scheme of :mod:`training.backtest`), per symbol, beside buy-and-hold.

Fit rows and evaluated rows never overlap: callers pass a ``fit_end`` at least one purge gap (the
longest horizon) before ``eval_start`` (see :func:`file_split`), so no fit target reaches into the
evaluated period. Baselines see the model's features at the window's last hour, standardised with
the model's scaler; persistence uses the raw ``return_{h}h`` feature (the last h-hour return) when
the gold frame has it, else ``return_1h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from training.backtest import BacktestConfig, run_backtest
from training.baselines import fit_baselines
from training.metrics import evaluate_horizon, p_value_vs
from training.predictor import PricePredictor
from warehouse.errors import DataError

BASELINES: tuple[str, ...] = ("majority", "persistence", "linear")
"""The baselines every report shows beside the model (the random walk sits in samples only)."""
PREDICTORS: tuple[str, ...] = ("model", *BASELINES, "random_walk")
BACKTEST_MODES: tuple[str, ...] = ("long_flat", "long_short")
BOOTSTRAP_BLOCK_HOURS = 24


def file_split(
    gold: pl.DataFrame, *, fit_fraction: float = 0.3, purge_hours: int
) -> tuple[datetime, datetime]:
    """Where baselines stop fitting and evaluation starts, over the unique hours of ``gold``.

    Args:
        gold: the gold frame of the file.
        fit_fraction: share of the hours (from the start) the baselines are fitted on;
            default 0.3.
        purge_hours: the gap between the last fit hour and the first evaluated hour; at least
            the longest horizon, so no fit target overlaps an evaluated row.

    Returns:
        ``(fit_end, eval_start)``.

    Raises:
        DataError: when fewer than 100 hours are left to evaluate.
    """
    hours = gold["ts"].unique().sort()
    if len(hours) == 0:
        raise DataError("the gold frame is empty: nothing to evaluate")
    fit_end = hours[max(int(len(hours) * fit_fraction) - 1, 0)]
    eval_start = fit_end + timedelta(hours=purge_hours + 1)
    left = int((hours >= eval_start).sum())
    if left < 100:
        raise DataError(
            f"only {left} hours after the baseline fit window (fit fraction {fit_fraction}, purge "
            f"{purge_hours} h) out of {len(hours)}: give a longer file"
        )
    return fit_end, eval_start


def score_samples(
    predictor: PricePredictor,
    gold: pl.DataFrame,
    *,
    fit_end: datetime,
    eval_start: datetime,
    eval_end: datetime | None = None,
    fit_start: datetime | None = None,
) -> pl.DataFrame:
    """Per-sample predictions of the model and of baselines fitted on ``[fit_start, fit_end]``.

    Args:
        predictor: the trained model.
        gold: gold rows (features and ``target_*`` columns) covering both periods.
        fit_end: the last hour whose rows fit the baselines.
        eval_start: the first evaluated hour; must be after ``fit_end``.
        eval_end: the last evaluated hour; ``None`` (default) means the end of ``gold``.
        fit_start: the first fit hour; ``None`` (default) means the start of ``gold``.

    Returns:
        One row per (symbol, ts, horizon) with a model prediction and a realised target.

    Raises:
        DataError: when ``eval_start <= fit_end`` or a period has no usable row.
    """
    if eval_start <= fit_end:
        raise DataError(f"evaluation starts {eval_start} on or before the fit end {fit_end}")
    b = predictor.bundle
    gold = gold.sort("symbol", "ts")
    history = eval_start - timedelta(hours=b.sequence_length - 1)
    in_eval = pl.col("ts") >= eval_start
    if eval_end is not None:
        in_eval &= pl.col("ts") <= eval_end
    context = gold.filter(pl.col("ts") >= history)
    if eval_end is not None:
        context = context.filter(pl.col("ts") <= eval_end)
    predictions = predictor.predict_all(context).filter(in_eval)
    rows = predictions.join(gold, on=["symbol", "ts"], how="left")
    fit_mask = pl.col("ts") <= fit_end
    if fit_start is not None:
        fit_mask &= pl.col("ts") >= fit_start
    fit = gold.filter(fit_mask)
    frames = []
    for h in b.horizons:
        target = f"target_return_{h}h"
        fit_h = fit.filter(pl.col(target).is_not_null())
        rows_h = rows.filter(pl.col(target).is_not_null())
        if fit_h.is_empty() or rows_h.is_empty():
            raise DataError(
                f"horizon {h}h: {len(fit_h)} fit rows and {len(rows_h)} evaluated rows; "
                "both periods need realised targets"
            )
        baselines = fit_baselines(
            _scaled(predictor, fit_h), fit_h[target].to_numpy(), _last_return(fit_h, h)
        )
        x_eval, last_eval = _scaled(predictor, rows_h), _last_return(rows_h, h)
        columns: dict[str, Any] = {
            "symbol": rows_h["symbol"],
            "ts": rows_h["ts"],
            "horizon_hours": pl.Series([h] * len(rows_h), dtype=pl.Int32),
            "realised_return": rows_h[target],
            "next_1h_return": rows_h["target_return_1h"]
            if "target_return_1h" in rows_h.columns
            else pl.Series([None] * len(rows_h), dtype=pl.Float64),
            "model_return": rows_h[f"predicted_return_{h}h"],
            "model_prob": rows_h[f"direction_probability_{h}h"],
        }
        for name, baseline in baselines.items():
            pred_return, prob = baseline.predict(x_eval, last_eval)
            columns[f"{name}_return"] = pred_return
            columns[f"{name}_prob"] = prob
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames, how="vertical_relaxed")


def horizon_report(samples: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Metrics per horizon: ``{"1h": {"model": M, "baselines": {name: M}}, ...}``.

    ``M`` is :meth:`training.metrics.HorizonMetrics.to_dict` (Wilson interval and a 24 h
    moving-block bootstrap interval, ``ci_low_block``/``ci_high_block``); the model's ``M`` adds
    ``p_value_vs_best_baseline`` and ``best_baseline``.
    """
    out: dict[str, dict[str, Any]] = {}
    for (h,), rows in samples.sort("horizon_hours", "symbol", "ts").group_by(
        ["horizon_hours"], maintain_order=True
    ):
        realised = rows["realised_return"].to_numpy()
        metrics = {
            who: evaluate_horizon(
                realised,
                rows[f"{who}_return"].to_numpy(),
                rows[f"{who}_prob"].to_numpy(),
                bootstrap_block_length=BOOTSTRAP_BLOCK_HOURS,
                bootstrap_resamples=1000,
            )
            for who in ("model", *BASELINES)
        }
        best = max(BASELINES, key=lambda name: metrics[name].directional_accuracy)
        hits = {who: _hits(realised, rows[f"{who}_prob"].to_numpy()) for who in ("model", best)}
        model = metrics["model"].to_dict()
        model["p_value_vs_best_baseline"] = p_value_vs(hits["model"], hits[best])
        model["best_baseline"] = best
        out[f"{h}h"] = {
            "model": model,
            "baselines": {name: metrics[name].to_dict() for name in BASELINES},
        }
    return out


def symbol_report(samples: pl.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`horizon_report` of each symbol's samples: ``{symbol: {"1h": ...}}``."""
    return {
        str(symbol): horizon_report(rows)
        for (symbol,), rows in samples.group_by(["symbol"], maintain_order=True)
    }


def backtest_report(
    samples: pl.DataFrame,
    *,
    config: BacktestConfig | None = None,
    horizons: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Backtests of the model's probabilities, per symbol and horizon, in both modes.

    Each horizon's probability decides the position every hour and the position earns the next
    1 h return, so holding periods never overlap (see :mod:`training.backtest`). Rows without a
    next 1 h return (a gap) are left out.

    Args:
        samples: from :func:`score_samples`.
        config: thresholds and costs; ``None`` means ``BacktestConfig()`` (10 bps fee, 5 bps
            slippage, long at p >= 0.55, short at p <= 0.45). ``mode`` is set per entry.
        horizons: the horizons to trade; ``None`` (default) means every horizon in ``samples``.

    Returns:
        ``{"config": {...}, "by_symbol": {symbol: {"1h": {"long_flat": R, "long_short": R}}}}``
        where ``R`` is :meth:`training.backtest.BacktestResult.to_dict`.
    """
    cfg = config or BacktestConfig()
    by_symbol: dict[str, dict[str, dict[str, Any]]] = {}
    for (symbol, h), rows in _tradeable(samples, horizons).group_by(
        ["symbol", "horizon_hours"], maintain_order=True
    ):
        results = run_backtests(rows, cfg)
        by_symbol.setdefault(str(symbol), {})[f"{h}h"] = {
            mode: result.to_dict() for mode, result in results.items()
        }
    return {
        "config": cfg.model_dump(exclude={"mode"}),
        "trading": "hourly on the next 1h return, position from each horizon's probability",
        "by_symbol": by_symbol,
    }


def run_backtests(rows: pl.DataFrame, config: BacktestConfig) -> dict[str, Any]:
    """Both modes of one symbol and horizon's samples (sorted by ``ts``, 1 h returns present)."""
    return {
        mode: run_backtest(
            rows["model_prob"].to_numpy(),
            rows["next_1h_return"].to_numpy(),
            timestamps=rows["ts"].dt.replace_time_zone(None).to_numpy(),
            config=config.model_copy(update={"mode": mode}),
        )
        for mode in BACKTEST_MODES
    }


def tradeable_rows(samples: pl.DataFrame, symbol: str, horizon: int) -> pl.DataFrame:
    """The samples of one symbol and horizon that a backtest can trade, in time order."""
    return _tradeable(samples, [horizon]).filter(pl.col("symbol") == symbol)


def evaluate_report(
    samples: pl.DataFrame, *, backtest: BacktestConfig | None = None
) -> dict[str, Any]:
    """The report ``marketlake evaluate --json`` prints: ``{"horizons": ..., "backtest": ...}``."""
    return {
        "horizons": horizon_report(samples),
        "backtest": backtest_report(samples, config=backtest),
    }


def _tradeable(samples: pl.DataFrame, horizons: Sequence[int] | None) -> pl.DataFrame:
    rows = samples.filter(pl.col("next_1h_return").is_not_null())
    if horizons is not None:
        rows = rows.filter(pl.col("horizon_hours").is_in(list(horizons)))
    return rows.sort("symbol", "horizon_hours", "ts")


def _scaled(predictor: PricePredictor, rows: pl.DataFrame) -> np.ndarray:
    """The model's features of ``rows`` standardised with its scaler (nulls at the mean)."""
    scaler = predictor.bundle.scaler
    values = rows.select(pl.col(f).cast(pl.Float64) for f in scaler.features).to_numpy()
    return scaler.transform(values).astype(np.float64)


def _last_return(rows: pl.DataFrame, horizon: int) -> np.ndarray:
    """The last observed h-hour return (else 1 h return) at each row; nulls count as 0."""
    for name in (f"return_{horizon}h", "return_1h"):
        if name in rows.columns:
            return rows[name].cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
    return np.zeros(len(rows))


def _hits(realised: np.ndarray, prob: np.ndarray) -> np.ndarray:
    return (realised > 0) == (prob > 0.5)
