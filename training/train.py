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
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import polars as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader, TensorDataset

from training.baselines import fit_baselines
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
from training.lightning_module import PriceModule
from training.metrics import HorizonMetrics, evaluate_horizon
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

LAST_RETURN_FEATURE = "return_1h"
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
            self.state = copy.deepcopy(module.network.state_dict())


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
) -> TrainingResult:
    """Train, evaluate, log and register a price model on the rows of ``gold``.

    Args:
        gold: the gold feature table (``symbol``, ``ts``, features, ``target_*`` columns).
        config: the frozen training configuration.
        feature_candidates: the feature columns the model may use.
        tracking_uri: the MLflow tracking (and registry) URI.
        artifacts: local artifact root for a new experiment (``None``: MLflow's default).
        gold_version: the Delta version of the gold table, logged with the run.
        code_version: the git commit of the code, logged with the run.
        progress: show Lightning's progress bar.
    """
    L.seed_everything(config.seed, workers=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    gold = gold.sort("symbol", "ts")
    bounds = split_bounds(
        gold,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        purge_hours=config.purge_hours,
    )
    train_mask = pl.col("ts") <= bounds.train_end
    features = select_features(
        gold, feature_candidates, train_mask=train_mask, min_coverage=config.min_feature_coverage
    )
    scaler = fit_scaler(gold, features, config.horizons, train_mask=train_mask)
    series = build_series(gold, scaler, config.horizons)
    seq = config.sequence_length
    splits = {
        "train": window_index(series, seq, end=bounds.train_end),
        "val": window_index(series, seq, start=bounds.val_start, end=bounds.val_end),
        "test": window_index(series, seq, start=bounds.test_start),
    }
    samples = {name: len(index) for name, index in splits.items()}
    if min(samples.values()) < 10:
        raise DataError(
            f"too few windows to train and evaluate ({samples}); "
            f"produce more hours of candles (sequence length {seq}, horizons {config.horizons})"
        )
    arrays = {name: gather_windows(series, index, seq) for name, index in splits.items()}
    loaders = {
        name: _loader(arrays[name], scaler.target_std, config, shuffle=name == "train")
        for name in splits
    }
    experiment_id = configure_tracking(tracking_uri, artifacts)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(config.model_dump(mode="json"))
        mlflow.log_params(
            {"n_features": len(features), **{f"{k}_windows": v for k, v in samples.items()}}
        )
        mlflow.set_tags(
            {
                "gold_table_version": str(gold_version),
                "code_version": code_version or "unknown",
                "split.train_end": bounds.train_end.isoformat(),
                "split.test_start": bounds.test_start.isoformat(),
            }
        )
        mlflow.log_text("\n".join(features), "features.txt")
        module = PriceModule(len(features), config)
        best = _BestWeights()
        trainer = L.Trainer(
            max_epochs=config.max_epochs,
            accelerator="cpu",
            callbacks=[
                EarlyStopping("val_loss", patience=config.patience),
                best,
                _EpochMetricsToMlflow(),
            ],
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
        predictor = PricePredictor(_bundle(module, config, scaler, features))
        test_metrics = _evaluate_split(predictor, arrays, config)
        for h, by_model in test_metrics.items():
            for who, metrics in by_model.items():
                mlflow.log_metrics(metrics.scalars(prefix=f"test_{h}_{who}_"))
        val_score = _direction_accuracy(predictor, arrays["val"])
        mlflow.log_metric(SCORE_TAG, val_score)
        version = _log_and_register(predictor, gold, config, run.info.run_id, tracking_uri)
    client = MlflowClient(tracking_uri)
    client.set_model_version_tag(config.model_name, str(version), SCORE_TAG, f"{val_score:.6f}")
    promoted = _promote_if_better(
        client, config, version, predictor, gold, bounds, arrays, tracking_uri
    )
    return TrainingResult(
        run_id=run.info.run_id,
        model_name=config.model_name,
        model_version=version,
        promoted=promoted,
        champion_version=alias_version(client, config.model_name),
        features=features,
        samples=samples,
        test_metrics={
            h: {who: _summary(m) for who, m in by_model.items()}
            for h, by_model in test_metrics.items()
        },
        val_score=val_score,
    )


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
    module: PriceModule, config: TrainConfig, scaler: Any, features: list[str]
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
    )


def _evaluate_split(
    predictor: PricePredictor,
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    config: TrainConfig,
    split: str = "test",
) -> dict[str, dict[str, HorizonMetrics]]:
    """Model and baselines per horizon on one split; baselines are fitted on train only."""
    features = predictor.bundle.features
    last_col = features.index(LAST_RETURN_FEATURE) if LAST_RETURN_FEATURE in features else None
    train_x, train_r, _ = arrays["train"]
    x, realised, _ = arrays[split]
    pred_return, prob_up = predictor.predict_windows(x)
    out: dict[str, dict[str, HorizonMetrics]] = {}
    for i, h in enumerate(config.horizons):
        last_train = _last_return(train_x, last_col, predictor)
        last_eval = _last_return(x, last_col, predictor)
        baselines = fit_baselines(train_x[:, -1, :], train_r[:, i], last_train)
        results = {"model": evaluate_horizon(realised[:, i], pred_return[:, i], prob_up[:, i])}
        for name, baseline in baselines.items():
            b_return, b_prob = baseline.predict(x[:, -1, :], last_eval)
            results[name] = evaluate_horizon(realised[:, i], b_return, b_prob)
        out[f"{h}h"] = results
    return out


def _last_return(windows: np.ndarray, column: int | None, predictor: PricePredictor) -> np.ndarray:
    """Unscaled last 1h return at each window's end (zeros when the feature is not used)."""
    if column is None:
        return np.zeros(len(windows))
    b = predictor.bundle
    return windows[:, -1, column] * b.feature_std[column] + b.feature_mean[column]


def _direction_accuracy(
    predictor: PricePredictor, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> float:
    """Directional accuracy averaged over horizons (the promotion score)."""
    windows, realised, _ = arrays
    _, prob_up = predictor.predict_windows(windows)
    return float(np.mean((prob_up > 0.5) == (realised > 0)))


def _summary(metrics: HorizonMetrics) -> dict[str, Any]:
    keep = ("n", "directional_accuracy", "ci_low", "ci_high", "mcc", "rank_ic", "mae_ratio_rw")
    data = metrics.to_dict()
    return {k: data[k] for k in keep}


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
    candidate: PricePredictor,
    gold: pl.DataFrame,
    bounds: SplitBounds,
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    tracking_uri: str,
) -> bool:
    """Promote when the candidate beats every baseline and the champion on validation rows."""
    val_metrics = _evaluate_split(candidate, arrays, config, split="val")
    candidate_score = float(
        np.mean([m["model"].directional_accuracy for m in val_metrics.values()])
    )
    for name in ("majority", "persistence", "linear"):
        score = float(np.mean([m[name].directional_accuracy for m in val_metrics.values()]))
        if candidate_score <= score:
            log.info(
                "version %s not promoted: %.4f <= %s %.4f", version, candidate_score, name, score
            )
            if alias_version(client, config.model_name) is None:
                break  # the first model becomes champion anyway, so serving has one
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
