"""Honest evaluation metrics for one forecast horizon: direction, probability and level.

Conventions used everywhere in this module:

- A realised move is **up** when the realised return is strictly greater than zero; a zero
  return counts as not up.
- A predicted move is **up** when ``pred_prob_up > 0.5``; a probability of exactly 0.5 is a
  "not up" call (so a constant 0.5 forecaster always calls "not up").
- Undefined statistics are documented per function: constant predictions give an MCC of 0 and
  a rank-IC of 0 (no ranking information), never an exception.

Published out-of-sample directional accuracy for 1-2 h crypto moves is about 51-56 %; the
confidence interval says whether a number is distinguishable from a coin flip, and
:func:`p_value_vs` whether it is distinguishable from a baseline. The plain Wilson interval and
the McNemar test assume independent samples; hourly returns with overlapping horizons are not,
so :func:`block_bootstrap_ci` (moving blocks) is offered for an autocorrelation-aware interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats

from warehouse.errors import DataError

__all__ = [
    "CalibrationBin",
    "HorizonMetrics",
    "accuracy_difference_ci",
    "balanced_accuracy",
    "block_bootstrap_ci",
    "brier_score",
    "calibration_table",
    "direction_hits",
    "evaluate_horizon",
    "expected_calibration_error",
    "matthews_corrcoef",
    "p_value_vs",
    "rank_ic",
    "wilson_interval",
]


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of a reliability table: predictions with ``bin_low <= p < bin_high``.

    The last bin also holds ``p == 1``. ``observed_frequency`` is the share of realised ups.
    """

    bin_low: float
    bin_high: float
    count: int
    mean_predicted: float
    observed_frequency: float

    def to_dict(self) -> dict[str, float | int]:
        """The bin as a plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True)
class HorizonMetrics:
    """Every evaluation number of one model on one horizon.

    Attributes:
        n: number of evaluated samples.
        up_rate: share of realised ups (the base rate a majority model exploits).
        pred_up_rate: share of "up" calls.
        directional_accuracy: share of samples whose up/not-up call was right.
        ci_low: lower bound of the Wilson interval of the accuracy.
        ci_high: upper bound of the Wilson interval of the accuracy.
        ci_low_block: lower bound of the moving-block bootstrap interval, ``None`` when not
            asked for.
        ci_high_block: upper bound of the moving-block bootstrap interval, or ``None``.
        balanced_accuracy: mean of the recalls of up and not-up (present classes only).
        mcc: Matthews correlation coefficient of the calls (0 when undefined).
        brier: mean squared error of ``pred_prob_up`` against the 0/1 outcome.
        ece: expected calibration error over the calibration bins.
        rank_ic: Spearman correlation of predicted and realised return (0 when undefined).
        return_sign_accuracy: share of samples where ``pred_return > 0`` matched the move.
        mae: mean absolute error of the predicted return.
        rmse: root mean squared error of the predicted return.
        mae_ratio_rw: ``mae`` over the random walk's (zero-return forecast) MAE; below 1 beats
            it. NaN when every realised return is exactly zero.
        rmse_ratio_rw: the same for the RMSE.
        calibration: the non-empty bins of the reliability table.
    """

    n: int
    up_rate: float
    pred_up_rate: float
    directional_accuracy: float
    ci_low: float
    ci_high: float
    ci_low_block: float | None
    ci_high_block: float | None
    balanced_accuracy: float
    mcc: float
    brier: float
    ece: float
    rank_ic: float
    return_sign_accuracy: float
    mae: float
    rmse: float
    mae_ratio_rw: float
    rmse_ratio_rw: float
    calibration: tuple[CalibrationBin, ...]

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-serialisable values; NaN and infinities become ``None``."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name == "calibration":
                out[name] = [dict(b) for b in value]
            elif isinstance(value, float) and not math.isfinite(value):
                out[name] = None
            else:
                out[name] = value
        return out

    def scalars(self, *, prefix: str = "") -> dict[str, float]:
        """The finite numeric metrics, for ``mlflow.log_metrics``.

        Args:
            prefix: prepended to every key (e.g. ``"h1_"``); default none.

        Returns:
            ``{prefix + name: value}`` without the calibration table and without values that
            are ``None`` or not finite.
        """
        out: dict[str, float] = {}
        for name, value in self.to_dict().items():
            if name == "calibration" or value is None:
                continue
            out[prefix + name] = float(value)
        return out


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion.

    Args:
        successes: number of successes, ``0 <= successes <= n``.
        n: number of trials, at least 1.
        confidence: two-sided coverage; default 0.95.

    Returns:
        ``(low, high)`` within ``[0, 1]``.

    Raises:
        DataError: when ``n < 1`` or ``successes`` is outside ``[0, n]``.
    """
    if n < 1 or not 0 <= successes <= n:
        raise DataError(
            f"Wilson interval needs 0 <= successes <= n and n >= 1, got {successes}/{n}"
        )
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def block_bootstrap_ci(
    values: np.ndarray,
    *,
    block_length: int = 24,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` under a moving-block bootstrap.

    Blocks of ``block_length`` consecutive samples are drawn with replacement (start positions
    uniform over the ``n - block_length + 1`` possible ones) and concatenated, the last one cut,
    until ``n`` samples are drawn; serial dependence inside a block is kept. Use it on a 0/1
    correctness vector for an accuracy interval that respects autocorrelation.

    Args:
        values: 1-D finite samples in time order.
        block_length: samples per block, clipped to ``n``; default 24 (one day of hours).
        n_resamples: bootstrap resamples; default 2000.
        confidence: two-sided coverage; default 0.95.
        seed: seed of the numpy generator; default 0.

    Returns:
        ``(low, high)`` percentile bounds of the resampled means.

    Raises:
        DataError: when ``values`` is empty, not 1-D or not finite, or ``block_length < 1``.
    """
    x = _as_1d(values, "values")
    if block_length < 1:
        raise DataError(f"block_length must be >= 1, got {block_length}")
    n = len(x)
    length = min(block_length, n)
    n_blocks = math.ceil(n / length)
    tail = n - (n_blocks - 1) * length
    csum = np.concatenate([[0.0], np.cumsum(x)])
    n_starts = n - length + 1
    full_sums = csum[length : length + n_starts] - csum[:n_starts]
    tail_sums = csum[tail : tail + n_starts] - csum[:n_starts]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_starts, size=(n_resamples, n_blocks))
    totals = full_sums[starts[:, :-1]].sum(axis=1) + tail_sums[starts[:, -1]]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(totals / n, [alpha, 1 - alpha])
    return float(low), float(high)


def direction_hits(y_true_return: np.ndarray, pred_prob_up: np.ndarray) -> np.ndarray:
    """Per-sample correctness of the up/not-up call (a bool array), for :func:`p_value_vs`."""
    y = _as_1d(y_true_return, "y_true_return")
    p = _as_1d(pred_prob_up, "pred_prob_up")
    _same_length(y=y, p=p)
    return (y > 0) == (p > 0.5)


def balanced_accuracy(actual_up: np.ndarray, predicted_up: np.ndarray) -> float:
    """Mean recall of the up and not-up classes; a class absent from ``actual_up`` is skipped."""
    actual = np.asarray(actual_up, dtype=bool)
    pred = np.asarray(predicted_up, dtype=bool)
    recalls = [
        float(np.mean(pred[actual == cls] == cls)) for cls in (True, False) if np.any(actual == cls)
    ]
    return float(np.mean(recalls))


def matthews_corrcoef(actual_up: np.ndarray, predicted_up: np.ndarray) -> float:
    """Matthews correlation of two boolean vectors; 0.0 when a confusion row or column is empty."""
    actual = np.asarray(actual_up, dtype=bool)
    pred = np.asarray(predicted_up, dtype=bool)
    tp = float(np.sum(actual & pred))
    tn = float(np.sum(~actual & ~pred))
    fp = float(np.sum(~actual & pred))
    fn = float(np.sum(actual & ~pred))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def brier_score(outcome_up: np.ndarray, prob_up: np.ndarray) -> float:
    """Mean squared difference between the probability of up and the 0/1 outcome."""
    y = np.asarray(outcome_up, dtype=float)
    p = np.asarray(prob_up, dtype=float)
    return float(np.mean((p - y) ** 2))


def calibration_table(
    prob_up: np.ndarray, outcome_up: np.ndarray, *, n_bins: int = 10
) -> tuple[CalibrationBin, ...]:
    """Reliability table over equal-width probability bins; empty bins are left out.

    Args:
        prob_up: predicted probabilities of up, in ``[0, 1]``.
        outcome_up: realised 0/1 (or bool) outcomes.
        n_bins: number of equal-width bins over ``[0, 1]``; default 10.

    Returns:
        The non-empty bins in increasing order of probability.
    """
    p = np.asarray(prob_up, dtype=float)
    y = np.asarray(outcome_up, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        if count:
            bins.append(
                CalibrationBin(
                    bin_low=float(edges[b]),
                    bin_high=float(edges[b + 1]),
                    count=count,
                    mean_predicted=float(p[mask].mean()),
                    observed_frequency=float(y[mask].mean()),
                )
            )
    return tuple(bins)


def expected_calibration_error(table: tuple[CalibrationBin, ...]) -> float:
    """Count-weighted mean of ``|mean_predicted - observed_frequency|`` over the bins."""
    total = sum(b.count for b in table)
    if total == 0:
        return float("nan")
    return sum(b.count * abs(b.mean_predicted - b.observed_frequency) for b in table) / total


def rank_ic(pred_return: np.ndarray, realised_return: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties) of predicted and realised returns.

    Returns 0.0 when either side is constant or has fewer than two samples: a forecast that
    does not rank has no rank information (rather than NaN, which breaks comparisons).
    """
    a = np.asarray(pred_return, dtype=float)
    b = np.asarray(realised_return, dtype=float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(np.corrcoef(stats.rankdata(a), stats.rankdata(b))[0, 1])


def p_value_vs(model_correct: np.ndarray, baseline_correct: np.ndarray) -> float:
    """One-sided exact McNemar p-value that the model is right more often than a comparator.

    Only discordant pairs count: ``b`` samples where the model is right and the comparator
    wrong, ``c`` the reverse. Under the null both are equally likely, so ``b ~ Binom(b + c,
    1/2)`` and the p-value is ``P(X >= b)``. With no discordant pair the p-value is 1.0.
    Samples are assumed independent; with overlapping horizons prefer
    :func:`accuracy_difference_ci`.

    Args:
        model_correct: per-sample correctness of the model (bool or 0/1).
        baseline_correct: per-sample correctness of the comparator on the same samples.

    Raises:
        DataError: when the vectors are empty or of different lengths.
    """
    m = _as_1d(model_correct, "model_correct").astype(bool)
    c = _as_1d(baseline_correct, "baseline_correct").astype(bool)
    _same_length(model_correct=m, baseline_correct=c)
    wins = int(np.sum(m & ~c))
    losses = int(np.sum(~m & c))
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def accuracy_difference_ci(
    model_correct: np.ndarray,
    baseline_correct: np.ndarray,
    *,
    block_length: int = 24,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Moving-block bootstrap interval of ``accuracy(model) - accuracy(baseline)``.

    The paired per-sample difference is resampled in blocks, so autocorrelation and the
    pairing are both respected. A lower bound above 0 means the model is better. Arguments
    after the two vectors are those of :func:`block_bootstrap_ci` (same defaults).
    """
    m = _as_1d(model_correct, "model_correct").astype(float)
    c = _as_1d(baseline_correct, "baseline_correct").astype(float)
    _same_length(model_correct=m, baseline_correct=c)
    return block_bootstrap_ci(
        m - c,
        block_length=block_length,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )


def evaluate_horizon(
    y_true_return: np.ndarray,
    pred_return: np.ndarray,
    pred_prob_up: np.ndarray,
    *,
    confidence: float = 0.95,
    n_bins: int = 10,
    bootstrap_block_length: int | None = None,
    bootstrap_resamples: int = 2000,
    seed: int = 0,
) -> HorizonMetrics:
    """Every metric of one model on one horizon.

    Args:
        y_true_return: realised forward returns (up means ``> 0``).
        pred_return: predicted forward returns, same length.
        pred_prob_up: predicted probabilities of up in ``[0, 1]``, same length.
        confidence: coverage of the accuracy intervals; default 0.95.
        n_bins: bins of the calibration table; default 10.
        bootstrap_block_length: block length of the moving-block bootstrap interval; ``None``
            (default) skips it and leaves ``ci_low_block``/``ci_high_block`` as ``None``.
        bootstrap_resamples: resamples of the bootstrap; default 2000.
        seed: seed of the bootstrap; default 0.

    Raises:
        DataError: when there are no samples, lengths differ, a value is not finite, or a
            probability is outside ``[0, 1]``.
    """
    y = _as_1d(y_true_return, "y_true_return")
    r = _as_1d(pred_return, "pred_return")
    p = _as_1d(pred_prob_up, "pred_prob_up")
    _same_length(y_true_return=y, pred_return=r, pred_prob_up=p)
    outside = int(np.sum((p < 0) | (p > 1)))
    if outside:
        raise DataError(f"pred_prob_up: {outside} of {len(p)} values are outside [0, 1]")
    n = len(y)
    actual = y > 0
    called = p > 0.5
    hits = actual == called
    low, high = wilson_interval(int(hits.sum()), n, confidence=confidence)
    block_low: float | None = None
    block_high: float | None = None
    if bootstrap_block_length is not None:
        block_low, block_high = block_bootstrap_ci(
            hits.astype(float),
            block_length=bootstrap_block_length,
            n_resamples=bootstrap_resamples,
            confidence=confidence,
            seed=seed,
        )
    table = calibration_table(p, actual, n_bins=n_bins)
    mae = float(np.mean(np.abs(r - y)))
    rmse = float(np.sqrt(np.mean((r - y) ** 2)))
    rw_mae = float(np.mean(np.abs(y)))
    rw_rmse = float(np.sqrt(np.mean(y**2)))
    return HorizonMetrics(
        n=n,
        up_rate=float(actual.mean()),
        pred_up_rate=float(called.mean()),
        directional_accuracy=float(hits.mean()),
        ci_low=low,
        ci_high=high,
        ci_low_block=block_low,
        ci_high_block=block_high,
        balanced_accuracy=balanced_accuracy(actual, called),
        mcc=matthews_corrcoef(actual, called),
        brier=brier_score(actual, p),
        ece=expected_calibration_error(table),
        rank_ic=rank_ic(r, y),
        return_sign_accuracy=float(np.mean((r > 0) == actual)),
        mae=mae,
        rmse=rmse,
        mae_ratio_rw=mae / rw_mae if rw_mae > 0 else float("nan"),
        rmse_ratio_rw=rmse / rw_rmse if rw_rmse > 0 else float("nan"),
        calibration=table,
    )


def _as_1d(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a finite, non-empty 1-D float array, else DataError naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name}: no samples to evaluate (n=0)")
    bad = int(np.sum(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{name}: {bad} of {arr.size} values are NaN or infinite")
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"arrays must have the same length, got {lengths}")
