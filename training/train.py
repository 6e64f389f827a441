"""One training job: gold table version in, MLflow run and registered model version out.

Steps: split by time with a purge gap, select and scale features on the training rows, train the
Lightning module with early stopping on validation loss (the best weights are kept), evaluate on
the test rows beside the naive baselines, log everything to MLflow, register the model, and move
the ``champion`` alias only if the candidate beats the champion and every baseline on the
validation rows.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import lightning as L
import mlflow
import numpy as np
import polars as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader, TensorDataset

from training.backtest import BacktestConfig
from training.config import TrainConfig
from training.dataset import (
    SplitBounds,
    build_series,
    fit_scaler,
    gather_windows,
    select_features,
    split_bounds,
    window_index,
)
from training.evaluation import (
    BASELINES,
    backtest_report,
    horizon_report,
    run_backtests,
    score_samples,
    tradeable_rows,
)
from training.lightning_module import PriceModule
from training.metrics import calibration_table
from training.plots import calibration_figure, equity_curve_figure, predicted_vs_realised_figure
from training.predictor import PriceModelBundle, PricePredictor
from training.registry import (
    SCORE_TAG,
    alias_version,
    configure_tracking,
    load_registered,
    promote,
)
from warehouse.errors import DataError, ModelError

log = logging.getLogger(__name__)

PIP_REQUIREMENTS = [
    "torch==2.13.0",
    "mlflow==3.17.2",
    "polars==2.1.0",
    "numpy==2.4.6",
    "pandas==2.3.3",
]


@dataclass
class TrainingResult:
    """What a training job produced."""

    run_id: str
    model_name: str
    model_version: int
    promoted: bool
    champion_version: int | None
    features: list[str]
    samples: dict[str, int]
    test_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    val_score: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "champion_version": self.champion_version,
            "features": len(self.features),
            "samples": self.samples,
            "val_direction_accuracy": self.val_score,
            "test": self.test_metrics,
        }


class _BestWeights(Callback):
    """Keeps a copy of the weights of the epoch with the lowest validation loss."""

    def __init__(self) -> None:
        self.best_loss = float("inf")
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or loss is None:
            return
        if float(loss) < self.best_loss:
            self.best_loss = float(loss)
            network = cast(PriceModule, module).network  # the only module fit_model trains
            self.state = copy.deepcopy(network.state_dict())


class _EpochMetricsToMlflow(Callback):
    """Logs the epoch's train and validation metrics to the active MLflow run."""

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k in ("train_loss", "val_loss", "val_direction_accuracy")
        }
        mlflow.log_metrics(metrics, step=trainer.current_epoch)


@dataclass(frozen=True)
class FittedModel:
    """A network trained on one split, wrapped for inference, with its window counts."""

    predictor: PricePredictor
    features: list[str]
    samples: dict[str, int]
    epochs: int


def fit_model(
    gold: pl.DataFrame,
    config: TrainConfig,
    *,
    feature_candidates: list[str],
    bounds: SplitBounds,
    train_start: datetime | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> FittedModel:
    """Select and scale features on the training rows, then train with early stopping.

    Training windows end in ``[train_start, bounds.train_end]``, validation windows in
    ``[bounds.val_start, bounds.val_end]``; the scaler and the feature choice see the training
    rows only. The weights of the epoch with the lowest validation loss are kept.

    Args:
        gold: gold rows (features and targets), any symbols.
        config: the training configuration.
        feature_candidates: the feature columns the model may use.
        bounds: the split (only ``train_end``, ``val_start`` and ``val_end`` are used).
        train_start: the first training hour; ``None`` (default) means the start of ``gold``.
        progress: show Lightning's progress bar; default True.
        callbacks: extra Lightning callbacks (e.g. per-epoch MLflow logging).

    Raises:
        DataError: when a split has fewer than 10 windows.
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    gold = gold.sort("symbol", "ts")
    train_mask = pl.col("ts") <= bounds.train_end
    if train_start is not None:
        train_mask &= pl.col("ts") >= train_start
    features = select_features(
        gold, feature_candidates, train_mask=train_mask, min_coverage=config.min_feature_coverage
    )
    scaler = fit_scaler(gold, features, config.horizons, train_mask=train_mask)
    series = build_series(gold, scaler, config.horizons)
    seq = config.sequence_length
    splits = {
        "train": window_index(series, seq, start=train_start, end=bounds.train_end),
        "val": window_index(series, seq, start=bounds.val_start, end=bounds.val_end),
    }
    samples = {name: len(index) for name, index in splits.items()}
    if min(samples.values()) < 10:
        raise DataError(
            f"too few windows to train and validate ({samples}); "
            f"produce more hours of candles (sequence length {seq}, horizons {config.horizons})"
        )
    loaders = {
        name: _loader(
            gather_windows(series, index, seq), scaler.target_std, config, shuffle=name == "train"
        )
        for name, index in splits.items()
    }
    module = PriceModule(len(features), config)
    best = _BestWeights()
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        accelerator="cpu",
        callbacks=[EarlyStopping("val_loss", patience=config.patience), best, *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=True,
        default_root_dir=tempfile.mkdtemp(prefix="marketlake-train-"),
    )
    trainer.fit(module, loaders["train"], loaders["val"])
    if best.state is not None:
        module.network.load_state_dict(best.state)
    info = {
        "train_start": None if train_start is None else train_start.isoformat(),
        "train_end": bounds.train_end.isoformat(),
        "val_end": bounds.val_end.isoformat(),
    }
    predictor = PricePredictor(_bundle(module, config, scaler, features, info))
    return FittedModel(predictor, features, samples, trainer.current_epoch)


def train_price_model(
    gold: pl.DataFrame,
    config: TrainConfig,
    *,
    feature_candidates: list[str],
    tracking_uri: str,
    artifacts: Path | None = None,
    gold_version: int | None = None,
    code_version: str | None = None,
    progress: bool = True,
    backtest: BacktestConfig | None = None,
) -> TrainingResult:
    """Train, evaluate, log and register a price model on the rows of ``gold``.

    Symbols are pooled into one model (see :class:`training.config.TrainConfig`): the features
    are scale-free, so pooling multiplies the training data and the model applies to symbols it
    never saw. The test split is evaluated beside the baselines (fitted on the training rows
    only) and backtested; metrics, the backtest and three figures (equity curve, calibration,
    predicted vs realised; 1 h horizon) go to the MLflow run.

    Args:
        gold: the gold feature table (``symbol``, ``ts``, features, ``target_*`` columns).
        config: the frozen training configuration.
        feature_candidates: the feature columns the model may use.
        tracking_uri: the MLflow tracking (and registry) URI.
        artifacts: local artifact root for a new experiment (``None``: MLflow's default).
        gold_version: the Delta version of the gold table, logged with the run.
        code_version: the git commit of the code, logged with the run.
        progress: show Lightning's progress bar; default True.
        backtest: thresholds and costs of the test backtest; ``None``: ``BacktestConfig()``.
    """
    gold = gold.sort("symbol", "ts")
    bounds = split_bounds(
        gold,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        purge_hours=config.purge_hours,
    )
    experiment_id = configure_tracking(tracking_uri, artifacts)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(config.model_dump(mode="json"))
        mlflow.set_tags(
            {
                "gold_table_version": str(gold_version),
                "code_version": code_version or "unknown",
                "split.train_end": bounds.train_end.isoformat(),
                "split.test_start": bounds.test_start.isoformat(),
                "symbols": ",".join(sorted(gold["symbol"].unique().to_list())),
                "symbols_pooled": "true",
            }
        )
        fitted = fit_model(
            gold,
            config,
            feature_candidates=feature_candidates,
            bounds=bounds,
            progress=progress,
            callbacks=[_EpochMetricsToMlflow()],
        )
        predictor, features = fitted.predictor, fitted.features
        test = score_samples(
            predictor, gold, fit_end=bounds.train_end, eval_start=bounds.test_start
        )
        samples = {
            **fitted.samples,
            "test": test.filter(pl.col("horizon_hours") == config.horizons[0]).height,
        }
        mlflow.log_params(
            {"n_features": len(features), **{f"{k}_windows": v for k, v in samples.items()}}
        )
        mlflow.log_text("\n".join(features), "features.txt")
        test_report = horizon_report(test)
        for h, entry in test_report.items():
            for who, metrics in [("model", entry["model"]), *entry["baselines"].items()]:
                mlflow.log_metrics(_finite(metrics, prefix=f"test_{h}_{who}_"))
        backtest_summary = backtest_report(test, config=backtest)
        mlflow.log_dict(
            {"horizons": test_report, "backtest": backtest_summary}, "evaluation/test.json"
        )
        _log_backtest_and_figures(test, backtest or BacktestConfig())
        val = score_samples(
            predictor,
            gold,
            fit_end=bounds.train_end,
            eval_start=bounds.val_start,
            eval_end=bounds.val_end,
        )
        val_score = _pooled_accuracy(val, "model")
        mlflow.log_metric(SCORE_TAG, val_score)
        mlflow.log_metrics(
            {f"val_{name}_direction_accuracy": _pooled_accuracy(val, name) for name in BASELINES}
        )
        version = _log_and_register(predictor, gold, config, run.info.run_id, tracking_uri)
    client = MlflowClient(tracking_uri)
    client.set_model_version_tag(config.model_name, str(version), SCORE_TAG, f"{val_score:.6f}")
    promoted = _promote_if_better(client, config, version, val, gold, bounds, tracking_uri)
    return TrainingResult(
        run_id=run.info.run_id,
        model_name=config.model_name,
        model_version=version,
        promoted=promoted,
        champion_version=alias_version(client, config.model_name),
        features=features,
        samples=samples,
        test_metrics={
            h: {
                who: _summary(m)
                for who, m in [("model", entry["model"]), *entry["baselines"].items()]
            }
            for h, entry in test_report.items()
        },
        val_score=val_score,
    )


def _log_backtest_and_figures(test: pl.DataFrame, config: BacktestConfig) -> None:
    """Backtest metrics per symbol (first horizon traded hourly) and the three figures."""
    first_h = int(cast(int, test["horizon_hours"].min()))  # an integer column
    for symbol in sorted(test["symbol"].unique().to_list()):
        rows = tradeable_rows(test, symbol, first_h)
        if rows.height < 2:
            continue
        results = run_backtests(rows, config)
        for mode, result in results.items():
            mlflow.log_metrics(result.scalars(prefix=f"backtest_{symbol}_{first_h}h_{mode}_"))
        figure = equity_curve_figure(
            results["long_flat"], title=f"{symbol} long/flat on the {first_h}h probability (test)"
        )
        mlflow.log_figure(figure, f"figures/equity_curve_{symbol}_{first_h}h.png")
    rows = test.filter(pl.col("horizon_hours") == first_h)
    outcome = (rows["realised_return"].to_numpy() > 0).astype(float)
    prob = rows["model_prob"].to_numpy()
    mlflow.log_figure(
        calibration_figure(
            calibration_table(prob, outcome), title=f"Calibration {first_h}h (test)"
        ),
        f"figures/calibration_{first_h}h.png",
    )
    mlflow.log_figure(
        predicted_vs_realised_figure(
            rows["model_return"].to_numpy(),
            rows["realised_return"].to_numpy(),
            title=f"Predicted vs realised {first_h}h (test)",
        ),
        f"figures/predicted_vs_realised_{first_h}h.png",
    )


def _finite(metrics: dict[str, Any], *, prefix: str) -> dict[str, float]:
    return {
        prefix + k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _loader(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    target_std: np.ndarray,
    config: TrainConfig,
    *,
    shuffle: bool,
) -> DataLoader:
    windows, returns, directions = arrays
    dataset = TensorDataset(
        torch.from_numpy(windows.astype(np.float32)),
        torch.from_numpy((returns / target_std).astype(np.float32)),
        torch.from_numpy(directions.astype(np.float32)),
    )
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle, generator=generator)


def _bundle(
    module: PriceModule,
    config: TrainConfig,
    scaler: Any,
    features: list[str],
    info: dict[str, Any],
) -> PriceModelBundle:
    state = {k: v.detach().cpu().numpy().copy() for k, v in module.network.state_dict().items()}
    return PriceModelBundle(
        features=list(features),
        horizons=list(config.horizons),
        sequence_length=config.sequence_length,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dropout=config.dropout,
        feature_mean=scaler.mean,
        feature_std=scaler.std,
        target_std=scaler.target_std,
        state=state,
        info=info,
    )


def _pooled_accuracy(samples: pl.DataFrame, who: str) -> float:
    hits = (samples["realised_return"] > 0) == (samples[f"{who}_prob"] > 0.5)
    return float(cast(float, hits.mean()))  # the mean of a Boolean column


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "directional_accuracy", "ci_low", "ci_high", "mcc", "rank_ic", "mae_ratio_rw")
    return {k: metrics[k] for k in keep}


def _log_and_register(
    predictor: PricePredictor,
    gold: pl.DataFrame,
    config: TrainConfig,
    run_id: str,
    tracking_uri: str,
) -> int:
    symbol = gold["symbol"][0]
    tail = gold.filter(pl.col("symbol") == symbol).tail(config.sequence_length)
    example = tail.select(["symbol", "ts", *predictor.bundle.features])
    example_pd = example.with_columns(pl.col("ts").dt.replace_time_zone(None)).to_pandas()
    output = predictor.predict_all(example).to_pandas()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=predictor,
        signature=infer_signature(example_pd, output),
        input_example=example_pd,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=config.model_name,
    )
    if info.registered_model_version is None:
        raise ModelError(f"run {run_id}: the model was logged but not registered")
    return int(info.registered_model_version)


def _promote_if_better(
    client: MlflowClient,
    config: TrainConfig,
    version: int,
    val: pl.DataFrame,
    gold: pl.DataFrame,
    bounds: SplitBounds,
    tracking_uri: str,
) -> bool:
    """Promote when the candidate beats every baseline and the champion on validation rows.

    Scores are directional accuracies pooled over symbols and horizons on the validation
    samples ``val`` (baselines fitted on the training rows). The very first model becomes
    champion even when a baseline beats it, so serving has a model; the log says so.
    """
    candidate_score = _pooled_accuracy(val, "model")
    for name in BASELINES:
        score = _pooled_accuracy(val, name)
        if candidate_score <= score:
            log.info(
                "version %s not promoted: %.4f <= %s %.4f", version, candidate_score, name, score
            )
            if alias_version(client, config.model_name) is None:
                log.warning(
                    "version %s becomes the first champion although %s beats it", version, name
                )
                break
            return False
    champion = alias_version(client, config.model_name)
    if champion is not None:
        champion_score = _champion_score(tracking_uri, config, gold, bounds)
        if champion_score is not None and candidate_score <= champion_score:
            log.info("version %s not promoted: champion scores %.4f", version, champion_score)
            return False
    promote(client, config.model_name, version)
    return True


def _champion_score(
    tracking_uri: str, config: TrainConfig, gold: pl.DataFrame, bounds: SplitBounds
) -> float | None:
    """The champion's directional accuracy on the candidate's validation rows."""
    try:
        champion = load_registered(tracking_uri, config.model_name).predictor
        predictions = champion.predict_all(gold)
    except (ModelError, DataError) as exc:
        log.warning("the champion cannot score this data (%s): it will be replaced", exc)
        return None
    rows = predictions.join(
        gold.select("symbol", "ts", *[f"target_return_{h}h" for h in champion.horizons]),
        on=["symbol", "ts"],
    )
    rows = rows.filter((pl.col("ts") >= bounds.val_start) & (pl.col("ts") <= bounds.val_end))
    hits = []
    for h in champion.horizons:
        valid = rows.filter(pl.col(f"target_return_{h}h").is_not_null())
        hits.append(
            (
                (valid[f"direction_probability_{h}h"] > 0.5) == (valid[f"target_return_{h}h"] > 0)
            ).to_numpy()
        )
    joined = np.concatenate(hits) if hits else np.array([])
    return float(joined.mean()) if len(joined) else None
