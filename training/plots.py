"""Evaluation figures for MLflow (``mlflow.log_figure``) and reports.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot:
no GUI backend, no global figure registry to leak, and rendering goes through Agg. matplotlib is
imported on first use; when ``MPLCONFIGDIR`` is unset it is pointed at ``<state folder>/matplotlib``
first, so its font cache is not written into ``$HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.metrics import CalibrationBin, rank_ic
from warehouse.errors import DataError
from warehouse.settings import load_settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from training.backtest import BacktestResult

__all__ = [
    "calibration_figure",
    "equity_curve_figure",
    "predicted_vs_realised_figure",
    "save_png",
]

_MAX_SCATTER_POINTS = 20_000


def equity_curve_figure(result: BacktestResult, *, title: str = "Equity curve") -> Figure:
    """Strategy and buy-and-hold equity, with the strategy's drawdown underneath.

    Args:
        result: a :func:`training.backtest.run_backtest` result.
        title: figure title; default ``"Equity curve"``.
    """
    figure_class = _figure_class()
    fig = figure_class(figsize=(9, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x: Any = result.timestamps if result.timestamps is not None else np.arange(len(result.equity))
    strategy = result.strategy
    top.plot(
        x,
        result.equity,
        label=f"strategy (Sharpe {strategy.sharpe:.2f}, return {strategy.total_return:+.1%})",
    )
    hold = result.buy_and_hold
    top.plot(
        x,
        result.buy_and_hold_equity,
        label=f"buy and hold (Sharpe {hold.sharpe:.2f}, return {hold.total_return:+.1%})",
        alpha=0.8,
    )
    top.axhline(1.0, color="grey", linewidth=0.8)
    top.set_ylabel("equity")
    top.legend(loc="best")
    top.set_title(
        f"{title}: {result.config.mode}, {result.config.fee_bps + result.config.slippage_bps:g} bps"
        f" per side, {strategy.n_trades} trades"
    )
    peaks = np.maximum.accumulate(np.concatenate([[1.0], result.equity]))[1:]
    bottom.fill_between(x, result.equity / peaks - 1.0, 0.0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    fig.autofmt_xdate()
    return fig


def calibration_figure(
    table: Sequence[CalibrationBin | Mapping[str, Any]], *, title: str = "Calibration"
) -> Figure:
    """Reliability diagram: observed frequency of up against mean predicted probability.

    Args:
        table: bins from :func:`training.metrics.calibration_table` (or their ``to_dict()``).
        title: figure title; default ``"Calibration"``.

    Raises:
        DataError: when the table is empty.
    """
    if not table:
        raise DataError("calibration table is empty: nothing to plot")
    rows = [b.to_dict() if isinstance(b, CalibrationBin) else dict(b) for b in table]
    predicted = np.array([r["mean_predicted"] for r in rows])
    observed = np.array([r["observed_frequency"] for r in rows])
    counts = np.array([r["count"] for r in rows])
    fig = _figure_class()(figsize=(6, 6))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    top.plot(predicted, observed, marker="o", label="model")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency of up")
    top.set_title(title)
    top.legend(loc="upper left")
    lows = np.array([r["bin_low"] for r in rows])
    widths = np.array([r["bin_high"] - r["bin_low"] for r in rows])
    bottom.bar(lows, counts, width=widths, align="edge", edgecolor="black")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("predicted probability of up")
    bottom.set_ylabel("count")
    return fig


def predicted_vs_realised_figure(
    pred_return: np.ndarray, realised_return: np.ndarray, *, title: str = "Predicted vs realised"
) -> Figure:
    """Scatter of predicted against realised returns with the diagonal and the rank-IC.

    At most 20,000 evenly spaced points are drawn; the rank-IC uses all of them.

    Args:
        pred_return: predicted returns.
        realised_return: realised returns, same length.
        title: figure title; default ``"Predicted vs realised"``.

    Raises:
        DataError: when the arrays are empty or of different lengths.
    """
    pred = np.asarray(pred_return, dtype=float)
    real = np.asarray(realised_return, dtype=float)
    if pred.size == 0 or pred.shape != real.shape:
        raise DataError(f"need two equal, non-empty arrays, got {pred.shape} and {real.shape}")
    step = max(1, len(pred) // _MAX_SCATTER_POINTS)
    fig = _figure_class()(figsize=(6, 6))
    ax = fig.subplots()
    ax.scatter(pred[::step], real[::step], s=4, alpha=0.3)
    finite = np.isfinite(pred) & np.isfinite(real)
    limit = float(np.max(np.abs(np.concatenate([pred[finite], real[finite]]))) or 1.0)
    ax.plot([-limit, limit], [-limit, limit], linestyle="--", color="grey")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.axvline(0.0, color="grey", linewidth=0.6)
    ic = rank_ic(pred[finite], real[finite]) if finite.any() else float("nan")
    ax.set_title(f"{title} (n={len(pred)}, rank-IC {ic:.3f})")
    ax.set_xlabel("predicted return")
    ax.set_ylabel("realised return")
    return fig


def save_png(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG, creating parent folders; returns the path.

    Args:
        fig: the figure.
        path: where to write it.
        dpi: resolution; default 100.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png", dpi=dpi, bbox_inches="tight")
    return target


def _figure_class() -> type[Figure]:
    """matplotlib's Figure, importing matplotlib with its config folder off ``$HOME``."""
    if "MPLCONFIGDIR" not in os.environ:
        config_dir = load_settings().home / "matplotlib"
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(config_dir)
    from matplotlib.figure import Figure

    return Figure
