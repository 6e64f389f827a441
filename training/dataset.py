"""Sequence windows from the gold table: time-ordered split with a purge gap, train-only scaling.

A sample is the window of the last ``sequence_length`` feature rows of one symbol ending at hour
``t`` and the targets at ``t``. Splits are by time across all symbols: train ends a purge gap
(the longest horizon) before validation starts, and validation a purge gap before test, so no
target of an earlier split overlaps a later one. Means and deviations of the features and of
the return targets come from the training rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from warehouse.errors import DataError


@dataclass(frozen=True)
class FeatureScaler:
    """Standardisation fitted on training rows: features and return targets."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    target_std: np.ndarray

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardise a ``(rows, features)`` matrix; nulls (NaN) become 0, the training mean."""
        scaled = (values - self.mean) / self.std
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


@dataclass(frozen=True)
class SymbolSeries:
    """One symbol's rows in time order: scaled features, targets and timestamps."""

    symbol: str
    ts: np.ndarray
    features: np.ndarray
    returns: np.ndarray
    directions: np.ndarray


@dataclass(frozen=True)
class WindowIndex:
    """Which windows belong to a split: (series index, end row) pairs."""

    series: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.end)


@dataclass(frozen=True)
class SplitBounds:
    """The last end-times of train and validation windows, and where test starts."""

    train_end: datetime
    val_start: datetime
    val_end: datetime
    test_start: datetime


def target_names(horizons: Sequence[int]) -> tuple[list[str], list[str]]:
    """The gold target columns for ``horizons``: (returns, directions)."""
    return (
        [f"target_return_{h}h" for h in horizons],
        [f"target_direction_{h}h" for h in horizons],
    )


def select_features(
    gold: pl.DataFrame, candidates: Sequence[str], *, train_mask: pl.Expr, min_coverage: float
) -> list[str]:
    """Keep the features with enough non-null, non-constant values in the training rows."""
    train = gold.filter(train_mask)
    if train.is_empty():
        raise DataError("no training rows: the gold table is too short for the split asked")
    kept = []
    for name in candidates:
        column = train[name].cast(pl.Float64)
        coverage = 1 - column.is_null().sum() / len(column)
        std = column.drop_nulls().std()  # a float on a Float64 column, None when empty
        if coverage >= min_coverage and isinstance(std, float) and std > 0:
            kept.append(name)
    if not kept:
        raise DataError("no usable feature: every candidate is mostly null or constant")
    return kept


def fit_scaler(
    gold: pl.DataFrame, features: Sequence[str], horizons: Sequence[int], *, train_mask: pl.Expr
) -> FeatureScaler:
    """Fit feature and return-target standardisation on the rows selected by ``train_mask``."""
    train = gold.filter(train_mask)
    values = train.select(pl.col(f).cast(pl.Float64) for f in features).to_numpy()
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    std[~np.isfinite(std) | (std == 0)] = 1.0
    returns, _ = target_names(horizons)
    targets = train.select(returns).to_numpy().astype(np.float64)
    target_std = np.nanstd(targets, axis=0)
    target_std[~np.isfinite(target_std) | (target_std == 0)] = 1.0
    return FeatureScaler(tuple(features), mean, std, target_std)


def build_series(
    gold: pl.DataFrame, scaler: FeatureScaler, horizons: Sequence[int]
) -> list[SymbolSeries]:
    """Scale every symbol's rows once; windows are views into these arrays."""
    returns, directions = target_names(horizons)
    series = []
    for (symbol,), frame in gold.sort("symbol", "ts").group_by(["symbol"], maintain_order=True):
        values = frame.select(pl.col(f).cast(pl.Float64) for f in scaler.features).to_numpy()
        series.append(
            SymbolSeries(
                symbol=str(symbol),
                ts=frame["ts"].to_numpy(),
                features=scaler.transform(values),
                returns=frame.select(returns).to_numpy().astype(np.float64),
                directions=frame.select(directions).to_numpy().astype(np.float64),
            )
        )
    return series


def datetime_bounds(series: pl.Series) -> tuple[datetime, datetime]:
    """First and last moment of a non-empty datetime column (nulls ignored).

    Raises:
        DataError: when ``series`` holds no non-null value or is not a datetime column.
    """
    low, high = series.min(), series.max()
    if not isinstance(low, datetime) or not isinstance(high, datetime):
        raise DataError(
            f"column {series.name!r} ({series.dtype}) has no datetime bounds: got {low!r}..{high!r}"
        )
    return low, high


def split_bounds(
    gold: pl.DataFrame, *, val_fraction: float, test_fraction: float, purge_hours: int
) -> SplitBounds:
    """Time boundaries of train / validation / test over the unique hours of ``gold``."""
    hours = gold["ts"].unique().sort()
    n = len(hours)
    purge = timedelta(hours=purge_hours)
    val_start = hours[int(n * (1 - val_fraction - test_fraction))]
    test_start = hours[int(n * (1 - test_fraction))]
    return SplitBounds(
        train_end=val_start - purge,
        val_start=val_start,
        val_end=test_start - purge,
        test_start=test_start,
    )


def window_index(
    series: Sequence[SymbolSeries],
    sequence_length: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    require_targets: bool = True,
) -> WindowIndex:
    """Windows whose last hour lies in ``[start, end]`` (open ends when ``None``)."""
    series_ids, ends = [], []
    for index, item in enumerate(series):
        rows = np.arange(sequence_length - 1, len(item.ts))
        ts = item.ts[rows]
        keep = np.ones(len(rows), dtype=bool)
        if start is not None:
            keep &= ts >= np.datetime64(start.replace(tzinfo=None))
        if end is not None:
            keep &= ts <= np.datetime64(end.replace(tzinfo=None))
        if require_targets:
            keep &= np.isfinite(item.returns[rows]).all(axis=1)
        series_ids.append(np.full(keep.sum(), index))
        ends.append(rows[keep])
    if not ends:
        return WindowIndex(np.array([], dtype=int), np.array([], dtype=int))
    return WindowIndex(np.concatenate(series_ids), np.concatenate(ends))


def gather_windows(
    series: Sequence[SymbolSeries], index: WindowIndex, sequence_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Materialise windows: features ``(n, L, F)``, returns ``(n, H)``, directions ``(n, H)``."""
    windows = (
        np.stack(
            [
                series[s].features[e - sequence_length + 1 : e + 1]
                for s, e in zip(index.series, index.end, strict=True)
            ]
        )
        if len(index)
        else np.zeros((0, sequence_length, series[0].features.shape[1]), np.float32)
    )
    returns = np.array([series[s].returns[e] for s, e in zip(index.series, index.end, strict=True)])
    directions = np.array(
        [series[s].directions[e] for s, e in zip(index.series, index.end, strict=True)]
    )
    return windows, returns, directions
