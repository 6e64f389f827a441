"""Walk-forward evaluation: a fresh model per fold, tested on the hours that follow its training.

Folds tile the last ``folds * test_hours`` hours of the gold frame, oldest first. Fold ``k``:

    [train_start .. train_end] embargo [val_start .. val_end] embargo [test_start .. test_end]

- training windows end in ``[train_start, train_end]`` (expanding: from the first hour; rolling:
  the last ``train_hours``); the feature choice, the scaler and the baselines see these rows only;
- validation (early stopping only) is the ``val_hours`` before the test, an embargo away;
- the embargo is at least the longest horizon, so no training or validation target reaches
  into the next period.

Every fold's test samples (model and baselines on the same rows) are pooled, then scored per
horizon and per symbol with 95 % Wilson and 24 h block-bootstrap intervals, the p-value of the
model against the best baseline, and a backtest over the concatenated test hours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.backtest import BacktestConfig
from training.config import TrainConfig
from training.dataset import SplitBounds, datetime_bounds
from training.evaluation import backtest_report, horizon_report, score_samples, symbol_report
from warehouse.errors import DataError
from warehouse.features import feature_columns

log = logging.getLogger(__name__)

SIX_MONTHS_HOURS = 4380


class WalkForwardConfig(BaseModel):
    """Options of one walk-forward evaluation.

    Attributes:
        train: the model configuration trained in every fold (default ``TrainConfig()``).
        folds: number of folds; default 6.
        test_hours: test hours per fold; default 730 (about a month).
        val_hours: validation hours per fold, for early stopping; default 720.
        train_hours: rolling training window in hours; ``None`` (default) expands from the first
            hour of the data.
        embargo_hours: gap between periods; ``None`` (default) means the longest horizon, and a
            smaller value is rejected.
        min_total_test_hours: the least test hours over all folds; default 4380 (six months).
        backtest: thresholds and costs of the backtest (default ``BacktestConfig()``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # mypy does not see pydantic's positional ``Field(default, ...)`` defaults without the
    # pydantic plugin, so it thinks ``TrainConfig()`` needs arguments.
    train: TrainConfig = Field(default_factory=TrainConfig)  # type: ignore[arg-type]
    folds: int = Field(6, ge=1, le=100)
    test_hours: int = Field(730, ge=24)
    val_hours: int = Field(720, ge=24)
    train_hours: int | None = Field(None, ge=48)
    embargo_hours: int | None = Field(None, ge=1)
    min_total_test_hours: int = Field(SIX_MONTHS_HOURS, ge=0)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)

    @model_validator(mode="after")
    def _check(self) -> WalkForwardConfig:
        longest = max(self.train.horizons)
        if self.embargo_hours is not None and self.embargo_hours < longest:
            raise ValueError(
                f"embargo_hours {self.embargo_hours} is shorter than the longest horizon "
                f"{longest}: training targets would overlap the test period"
            )
        if self.folds * self.test_hours < self.min_total_test_hours:
            raise ValueError(
                f"{self.folds} folds x {self.test_hours} test hours = "
                f"{self.folds * self.test_hours} h, below min_total_test_hours "
                f"{self.min_total_test_hours}"
            )
        return self

    @property
    def required_hours(self) -> int:
        """The least span of data (hours) the folds need: tests, embargoes, validation and at
        least ``val_hours`` of training before the first fold."""
        return self.folds * self.test_hours + 2 * self.embargo + 2 * self.val_hours + 2

    @property
    def embargo(self) -> int:
        """The embargo in hours (``embargo_hours`` or the longest horizon)."""
        return self.embargo_hours or max(self.train.horizons)


@dataclass(frozen=True)
class Fold:
    """The time bounds of one fold (inclusive)."""

    index: int
    train_start: datetime
    train_end: datetime
    val_start: datetime
    val_end: datetime
    test_start: datetime
    test_end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {k: v if isinstance(v, int) else v.isoformat() for k, v in vars(self).items()}


@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """The report (JSON-serialisable) and the pooled per-sample test predictions."""

    report: dict[str, Any]
    samples: pl.DataFrame


def plan_folds(first: datetime, last: datetime, config: WalkForwardConfig) -> list[Fold]:
    """The folds over the hours ``[first, last]``, oldest first.

    Raises:
        DataError: when the first fold would have less than ``val_hours`` of training hours.
    """
    hour = timedelta(hours=1)
    embargo = timedelta(hours=config.embargo)
    folds = []
    for k in range(config.folds):
        test_end = last - (config.folds - 1 - k) * config.test_hours * hour
        test_start = test_end - (config.test_hours - 1) * hour
        val_end = test_start - embargo - hour
        val_start = val_end - (config.val_hours - 1) * hour
        train_end = val_start - embargo - hour
        if config.train_hours is None:
            train_start = first
        else:
            train_start = max(first, train_end - (config.train_hours - 1) * hour)
        folds.append(Fold(k, train_start, train_end, val_start, val_end, test_start, test_end))
    available = (folds[0].train_end - first) / hour + 1
    if available < config.val_hours:
        raise DataError(
            f"the data ({first} .. {last}) leaves the first fold {available:.0f} training hours; "
            f"use fewer folds or test hours (folds {config.folds}, test {config.test_hours} h, "
            f"validation {config.val_hours} h, embargo {config.embargo} h)"
        )
    return folds


def run_walk_forward(
    gold: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    feature_candidates: list[str] | None = None,
    progress: bool = True,
) -> WalkForwardResult:
    """Train and test one model per fold and score the pooled test samples.

    Args:
        gold: gold rows (features and targets) of one or more symbols.
        config: the folds and the model configuration.
        feature_candidates: the features the model may use; ``None`` (default) means
            :func:`warehouse.features.feature_columns` present in ``gold``.
        progress: a progress bar over the folds on stderr; default True.

    Returns:
        The pooled samples and the report ``{"config", "folds", "test_hours_total", "horizons",
        "by_symbol", "backtest"}`` (JSON-serialisable): ``horizons`` and
        ``by_symbol`` as :func:`training.evaluation.horizon_report`, ``folds`` with each fold's
        bounds, window counts, epochs and 1 h accuracies of the model and the baselines.
    """
    from tqdm import tqdm

    from training.train import fit_model

    gold = gold.sort("symbol", "ts")
    candidates = feature_candidates or [c for c in feature_columns() if c in gold.columns]
    folds = plan_folds(*datetime_bounds(gold["ts"]), config)
    samples, summaries = [], []
    for fold in tqdm(folds, desc="walk-forward folds", disable=not progress):
        bounds = SplitBounds(fold.train_end, fold.val_start, fold.val_end, fold.test_start)
        fitted = fit_model(
            gold.filter(pl.col("ts").is_between(fold.train_start, fold.val_end)),
            config.train,
            feature_candidates=candidates,
            bounds=bounds,
            train_start=fold.train_start,
            progress=False,
        )
        fold_samples = score_samples(
            fitted.predictor,
            gold,
            fit_start=fold.train_start,
            fit_end=fold.train_end,
            eval_start=fold.test_start,
            eval_end=fold.test_end,
        ).with_columns(pl.lit(fold.index).alias("fold"))
        samples.append(fold_samples)
        first_h = fold_samples.filter(pl.col("horizon_hours") == config.train.horizons[0])
        summaries.append(
            {
                **fold.to_dict(),
                "fold": fold.index,
                "train_windows": fitted.samples["train"],
                "val_windows": fitted.samples["val"],
                "epochs": fitted.epochs,
                "features": len(fitted.features),
                "test_samples": first_h.height,
                f"accuracy_{config.train.horizons[0]}h": {
                    who: _hit_rate(first_h, who)
                    for who in ("model", "majority", "persistence", "linear")
                },
            }
        )
        log.info("fold %s done: %s", fold.index, summaries[-1])
    pooled = pl.concat(samples, how="vertical_relaxed")
    report = {
        "config": config.model_dump(mode="json"),
        "folds": summaries,
        "test_hours_total": config.folds * config.test_hours,
        "horizons": horizon_report(pooled),
        "by_symbol": symbol_report(pooled),
        "backtest": backtest_report(pooled, config=config.backtest),
    }
    return WalkForwardResult(report, pooled)


def _hit_rate(samples: pl.DataFrame, who: str) -> float:
    """Share of ``samples`` whose realised direction ``who`` called (``<who>_prob`` > 0.5)."""
    hits = (samples["realised_return"] > 0) == (samples[f"{who}_prob"] > 0.5)
    return float(cast(float, hits.mean()))  # a Boolean mean: float, None when empty (raises)
